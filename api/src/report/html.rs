//! The summary report as a printable page in Chinese (A4), with its charts as inline SVG drawn
//! here: no script, no font or image fetched, nothing needed from the network to view or print.
//! Every figure carries a `data-figure` attribute naming the JSON field it shows.

use std::fmt::Write;

use super::{NamedCount, SummaryReport};
use crate::routes::analysis::Rate;

/// Escapes text for HTML (element content and attribute values), without the directional
/// formatting characters [`super::is_bidi_control`] names.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !super::is_bidi_control(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The Chinese name of a clock's stage.
pub fn stage_name(stage: Option<&str>) -> &'static str {
    match stage {
        Some("assignment") => "交办",
        Some("sign_for") => "签收",
        Some("handling") => "办理",
        Some("feedback") => "反馈",
        Some("follow_up") => "回访",
        Some("acknowledgement") => "受理告知",
        Some("overall") => "办结（60日）",
        _ => "—",
    }
}

/// A rate as a percentage with one decimal (`—` when nothing was counted).
pub fn percent(r: &Rate) -> String {
    r.value.map_or_else(|| "—".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

const STYLE: &str = r#"
@page { size: A4; margin: 18mm 16mm; }
body { font-family: "Noto Sans CJK SC", "Droid Sans Fallback", "WenQuanYi Micro Hei", sans-serif; color: #222; margin: 0 auto; max-width: 178mm; font-size: 11pt; line-height: 1.5; }
h1 { font-size: 18pt; text-align: center; margin: 0 0 4mm; }
h2 { font-size: 13pt; border-bottom: 1px solid #999; margin: 6mm 0 2mm; page-break-after: avoid; }
.meta { text-align: center; color: #555; font-size: 9.5pt; }
.note { color: #555; font-size: 9pt; }
table { border-collapse: collapse; width: 100%; font-size: 10pt; page-break-inside: avoid; }
th, td { border: 1px solid #bbb; padding: 1.2mm 2mm; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child { text-align: left; }
svg { display: block; margin: 2mm 0; page-break-inside: avoid; }
section { page-break-inside: avoid; }
@media print { a { color: inherit; text-decoration: none; } }
"#;

fn table(out: &mut String, head: &[&str], rows: &[Vec<(String, Option<String>)>]) {
    out.push_str("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for (i, (cell, figure)) in row.iter().enumerate() {
            let class = if i > 0 { " class=\"n\"" } else { "" };
            match figure {
                Some(f) => {
                    let _ = write!(out, "<td{class} data-figure=\"{}\">{}</td>", escape(f), escape(cell));
                }
                None => {
                    let _ = write!(out, "<td{class}>{}</td>", escape(cell));
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// Horizontal bars, one per count, labelled.
fn bars(out: &mut String, id: &str, counts: &[NamedCount]) {
    let max = counts.iter().map(|c| c.count).max().unwrap_or(0).max(1);
    let row = 22;
    let height = row * counts.len().max(1) + 8;
    let _ = write!(
        out,
        "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{height}\" viewBox=\"0 0 640 {height}\" role=\"img\">"
    );
    for (i, c) in counts.iter().enumerate() {
        let y = 4 + i * row;
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let w = ((c.count as f64 / max as f64) * 400.0).round() as u32;
        let _ = write!(
            out,
            "<text x=\"150\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text><rect x=\"160\" y=\"{}\" width=\"{w}\" height=\"16\" fill=\"#4a78b5\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 13,
            escape(&c.name),
            y,
            166 + w,
            y + 13,
            c.count
        );
    }
    out.push_str("</svg>");
}

/// A line of weekly counts with its axis.
fn line(out: &mut String, id: &str, r: &SummaryReport) {
    let (w, h, left, bottom) = (640.0, 220.0, 40.0, 30.0);
    #[allow(clippy::cast_precision_loss)]
    let max = r.weekly.iter().map(|p| p.count).max().unwrap_or(0).max(1) as f64;
    let n = r.weekly.len().max(2);
    let _ = write!(
        out,
        "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"220\" viewBox=\"0 0 640 220\" role=\"img\">\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/><line x1=\"{left}\" y1=\"10\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"{}\" y=\"14\" font-size=\"11\" text-anchor=\"end\">{max}</text>",
        h - bottom,
        w - 10.0,
        h - bottom,
        h - bottom,
        left - 4.0
    );
    let mut points = String::new();
    for (i, p) in r.weekly.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = left + (w - left - 20.0) * i as f64 / (n - 1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let y = (h - bottom) - (h - bottom - 14.0) * p.count as f64 / max;
        let _ = write!(points, "{x:.1},{y:.1} ");
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"#c0392b\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            y - 6.0,
            p.count
        );
        if i % 2 == 0 {
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                h - 12.0,
                p.week.format("%m-%d")
            );
        }
    }
    let _ = write!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\"/></svg>",
        points.trim_end()
    );
}

/// The last ratings as one stacked bar with its legend.
fn satisfaction(out: &mut String, r: &SummaryReport) {
    let s = &r.satisfaction;
    let parts = [
        ("满意", s.satisfied, "#2e8b57"),
        ("基本满意", s.basically_satisfied, "#9acd32"),
        ("不满意", s.dissatisfied, "#c0392b"),
        ("未评价", s.unrated, "#bbbbbb"),
    ];
    let total = parts.iter().map(|p| p.1).sum::<i64>().max(1);
    out.push_str(
        "<svg id=\"chart-satisfaction\" xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"70\" viewBox=\"0 0 640 70\" role=\"img\">",
    );
    let mut x = 0.0;
    for (i, (name, n, colour)) in parts.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let w = 600.0 * *n as f64 / total as f64;
        let _ = write!(out, "<rect x=\"{x:.1}\" y=\"4\" width=\"{w:.1}\" height=\"24\" fill=\"{colour}\"/>");
        x += w;
        let lx = i * 150;
        let _ = write!(
            out,
            "<rect x=\"{lx}\" y=\"42\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"53\" font-size=\"12\">{name} {n}</text>",
            lx + 16
        );
    }
    out.push_str("</svg>");
}

/// The page.
pub fn render(r: &SummaryReport) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let title = match &r.village_name {
        Some(v) => format!("{} · {} 总结报告", r.campaign_name, v),
        None => format!("{} 总结报告", r.campaign_name),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(
        o,
        "<h1>{}</h1><p class=\"meta\">活动期间 {} 至 {} · 统计截至日志位置 {} · {}{}</p>",
        escape(&title),
        r.period_from,
        r.period_to,
        r.log_position,
        r.computed_at.with_timezone(&domain::calendar::china_offset()).format("%Y-%m-%d %H:%M"),
        if r.frozen { " · 活动结束定稿" } else { " · 活动进行中，数据可能变化" }
    );
    if r.frozen {
        let _ = write!(
            o,
            "<p class=\"meta\">报告指纹（SHA-256）<code data-figure=\"fingerprint\">{}</code></p>",
            super::fingerprint_of(r)
        );
    }

    o.push_str("<section><h2>一、总体情况</h2>");
    let _ = write!(
        o,
        "<p>共受理群众意见建议和投诉 <b data-figure=\"cases\">{}</b> 件，尚未办结 <b data-figure=\"unresolved\">{}</b> 件，其中超期 <b data-figure=\"overdue_count\">{}</b> 件。</p>",
        r.cases, r.unresolved, r.overdue_count
    );
    let rows = |v: &[NamedCount], field: &str| -> Vec<Vec<(String, Option<String>)>> {
        v.iter()
            .enumerate()
            .map(|(i, c)| vec![(c.name.clone(), None), (c.count.to_string(), Some(format!("{field}[{i}].count")))])
            .collect()
    };
    table(&mut o, &["渠道", "件数"], &rows(&r.by_channel, "by_channel"));
    table(&mut o, &["类型", "件数"], &rows(&r.by_kind, "by_kind"));
    o.push_str("</section><section><h2>二、问题分类</h2>");
    bars(&mut o, "chart-category", &r.by_category);
    table(&mut o, &["类别", "件数"], &rows(&r.by_category, "by_category"));
    o.push_str("</section><section><h2>三、逐周受理情况</h2>");
    line(&mut o, "chart-weekly", r);
    if let Some(c) = super::weekly_caption(r) {
        let _ = write!(o, "<p class=\"note\">{}</p>", escape(&c));
    }

    o.push_str("</section><section><h2>四、活动开展情况</h2>");
    let a = &r.activity;
    let act: Vec<(&str, i64, &str)> = vec![
        ("召开座谈会（次）", a.meetings, "activity.meetings"),
        ("参会代表（人）", a.attendees, "activity.attendees"),
        ("座谈会意见转为诉求（件）", a.opinions, "activity.opinions"),
        ("明察（次）", a.visits_open, "activity.visits_open"),
        ("暗访（次）", a.visits_undercover, "activity.visits_undercover"),
        ("发现问题（个）", a.findings, "activity.findings"),
        ("联系卡印制（张）", a.cards_printed, "activity.cards_printed"),
        ("联系卡发放（张）", a.cards_handed_out, "activity.cards_handed_out"),
        ("凭联系卡反映（件）", a.cards_used, "activity.cards_used"),
        ("问卷调查（次）", a.surveys, "activity.surveys"),
        ("回收问卷（份）", a.survey_responses, "activity.survey_responses"),
    ];
    let act_rows: Vec<Vec<(String, Option<String>)>> =
        act.iter().map(|(k, v, f)| vec![((*k).to_owned(), None), (v.to_string(), Some((*f).to_owned()))]).collect();
    table(&mut o, &["项目", "数量"], &act_rows);

    o.push_str("</section><section><h2>五、办理质效指标</h2>");
    let k = &r.kpis;
    let kpi: Vec<(&str, &Rate, &str)> = vec![
        ("及时签收率", &k.timely_sign_for_rate, "timely_sign_for_rate"),
        ("响应率", &k.response_rate, "response_rate"),
        ("按期办结率", &k.on_time_completion_rate, "on_time_completion_rate"),
        ("回退率", &k.return_rate, "return_rate"),
        ("重办率", &k.rework_rate, "rework_rate"),
        ("有效回访率", &k.follow_up_rate, "follow_up_rate"),
        ("满意率", &k.satisfaction_rate, "satisfaction_rate"),
        ("解决率", &k.resolution_rate, "resolution_rate"),
    ];
    let kpi_rows: Vec<Vec<(String, Option<String>)>> = kpi
        .iter()
        .map(|(name, rate, f)| {
            vec![
                ((*name).to_owned(), None),
                (rate.numerator.to_string(), Some(format!("kpis.{f}.numerator"))),
                (rate.denominator.to_string(), Some(format!("kpis.{f}.denominator"))),
                (percent(rate), Some(format!("kpis.{f}.value"))),
            ]
        })
        .collect();
    table(&mut o, &["指标", "分子", "分母", "比率"], &kpi_rows);
    let d = &k.reply_working_days;
    let _ = write!(
        o,
        "<p>受理至首次答复平均 <b data-figure=\"kpis.reply_working_days.mean\">{}</b> 个工作日，90% 在 <b data-figure=\"kpis.reply_working_days.p90\">{}</b> 个工作日内（{} 件）。</p>",
        d.mean.map_or_else(|| "—".to_owned(), |m| format!("{m:.1}")),
        d.p90.map_or_else(|| "—".to_owned(), |m| format!("{m:.1}")),
        d.count
    );
    let _ = write!(o, "<p class=\"note\">{}</p>", escape(super::KPI_WINDOW_NOTE));

    o.push_str("</section><section><h2>六、群众满意度</h2>");
    satisfaction(&mut o, r);

    o.push_str("</section><section><h2>七、超期未办结</h2>");
    if r.overdue.is_empty() {
        o.push_str("<p>无。</p>");
    } else {
        if let Some(c) = super::overdue_caption(r) {
            let _ = write!(o, "<p>{}</p>", escape(&c));
        }
        let rows: Vec<Vec<(String, Option<String>)>> = r
            .overdue
            .iter()
            .map(|c| {
                vec![
                    (c.receipt_code.clone(), None),
                    (c.category.clone(), None),
                    (stage_name(c.stage.as_deref()).to_owned(), None),
                    (c.due_at.with_timezone(&domain::calendar::china_offset()).format("%Y-%m-%d").to_string(), None),
                ]
            })
            .collect();
        table(&mut o, &["受理编号", "类别", "超期环节", "到期日期"], &rows);
    }

    o.push_str("</section><section><h2>八、督办情况</h2>");
    let _ = write!(
        o,
        "<p>共督办 <b data-figure=\"supervision.raised\">{}</b> 件，尚未办结 <b data-figure=\"supervision.open\">{}</b> 件。</p>",
        r.supervision.raised, r.supervision.open
    );
    if !r.supervision.by_level.is_empty() {
        table(&mut o, &["督办级别", "件数"], &rows(&r.supervision.by_level, "supervision.by_level"));
        table(&mut o, &["督办事由", "件数"], &rows(&r.supervision.by_trigger, "supervision.by_trigger"));
    }

    o.push_str("</section><section><h2>九、苗头性、倾向性问题</h2>");
    if r.emerging.is_empty() {
        o.push_str("<p>本期未发现统计上显著上升的问题。</p>");
    } else {
        let rows: Vec<Vec<(String, Option<String>)>> = r
            .emerging
            .iter()
            .map(|e| {
                vec![
                    (e.what.clone(), None),
                    (e.recent.to_string(), None),
                    (format!("{:.1}", e.baseline), None),
                    (format!("{:.4}", e.q), None),
                ]
            })
            .collect();
        table(&mut o, &["问题", "近一周件数", "此前周均件数", "q 值"], &rows);
    }
    o.push_str("</section><section><h2>十、问卷调查反映</h2>");
    if r.surveys.is_empty() {
        o.push_str("<p>无可比较的问卷。</p>");
    } else {
        let rows: Vec<Vec<(String, Option<String>)>> = r
            .surveys
            .iter()
            .map(|s| {
                let share = |n: u64, d: u64| {
                    #[allow(clippy::cast_precision_loss)]
                    let v = if d == 0 { 0.0 } else { n as f64 / d as f64 * 100.0 };
                    format!("{v:.1}%（{n}/{d}）")
                };
                vec![
                    (s.policy.clone(), None),
                    (share(s.before.not_received, s.before.answered), None),
                    (share(s.latest.not_received, s.latest.answered), None),
                    (if s.flagged { "明显上升" } else { "无显著变化" }.to_owned(), None),
                ]
            })
            .collect();
        table(&mut o, &["政策", "上次未享受比例", "本次未享受比例", "判断"], &rows);
    }
    o.push_str("</section></body></html>");
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_shows_no_directional_override_and_escapes_markup() {
        assert_eq!(super::escape("村\u{202E}告报结总<b>\u{2066}&\u{2069}\u{200F}"), "村告报结总&lt;b&gt;&amp;");
    }
}
