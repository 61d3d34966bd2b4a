//! The summary report as PDF (A4), drawn with `krilla` in a CJK font from a Debian package
//! (`fonts-wqy-microhei`: `/usr/share/fonts/truetype/wqy/wqy-microhei.ttc`, which also holds
//! Latin letters and digits; or `HUIYIN_REPORT_FONT`), which it subsets and embeds: the figures
//! are text a reader can copy and `pdftotext` extracts. Rendered from the report's JSON alone.

use std::sync::OnceLock;

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::text::{Font, TextDirection};

use super::SummaryReport;
use super::html::percent;

/// The font the PDF is set in, unless `HUIYIN_REPORT_FONT` names another (a TrueType or
/// OpenType file with CJK glyphs, Latin letters and digits; index 0 of a collection). (Droid Sans
/// Fallback has no digits: its figures came out blank.)
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// Why no PDF could be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The font file is missing or unreadable.
    #[error("the report font {0} cannot be read: install fonts-wqy-microhei or set HUIYIN_REPORT_FONT")]
    Font(String),
    /// The PDF writer failed.
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

fn font() -> Result<Font, PdfError> {
    static FONT: OnceLock<Option<Font>> = OnceLock::new();
    let path = std::env::var("HUIYIN_REPORT_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_owned());
    FONT.get_or_init(|| std::fs::read(&path).ok().and_then(|data| Font::new(data.into(), 0)))
        .clone()
        .ok_or(PdfError::Font(path))
}

const W: f32 = 595.0;
const H: f32 = 842.0;
const MARGIN: f32 = 50.0;

/// Lines laid out down A4 pages.
struct Writer {
    font: Font,
    pages: Vec<Vec<Item>>,
    y: f32,
}

enum Item {
    Text { x: f32, y: f32, size: f32, text: String },
    Bar { x: f32, y: f32, w: f32, h: f32 },
}

impl Writer {
    fn new(font: Font) -> Self {
        Self { font, pages: vec![Vec::new()], y: MARGIN }
    }

    fn room(&mut self, h: f32) {
        if self.y + h > H - MARGIN {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    /// Every text drawn passes here: without directional formatting characters.
    fn push(&mut self, item: Item) {
        let item = match item {
            Item::Text { x, y, size, text } => {
                Item::Text { x, y, size, text: text.chars().filter(|c| !super::is_bidi_control(*c)).collect() }
            }
            other => other,
        };
        if let Some(p) = self.pages.last_mut() {
            p.push(item);
        }
    }

    /// A line of text, wrapped at the right margin (a CJK character is about as wide as the
    /// font size, a Latin letter or digit about half of it).
    fn line(&mut self, size: f32, text: impl Into<String>) {
        let text: String = text.into();
        let width = W - 2.0 * MARGIN;
        let mut piece = String::new();
        let mut used = 0.0;
        let mut pieces = Vec::new();
        for c in text.chars() {
            let w = if c.is_ascii() { size * 0.55 } else { size };
            if used + w > width && !piece.is_empty() {
                pieces.push(std::mem::take(&mut piece));
                used = 0.0;
            }
            piece.push(c);
            used += w;
        }
        pieces.push(piece);
        for p in pieces {
            self.room(size * 1.6);
            self.y += size * 1.6;
            let y = self.y;
            self.push(Item::Text { x: MARGIN, y, size, text: p });
        }
    }

    fn heading(&mut self, text: &str) {
        self.y += 6.0;
        self.line(13.0, text);
    }

    fn bar(&mut self, label: &str, n: i64, max: i64) {
        self.room(16.0);
        self.y += 16.0;
        let y = self.y;
        #[allow(clippy::cast_precision_loss)]
        let w = 300.0 * n as f32 / max.max(1) as f32;
        self.push(Item::Text { x: MARGIN, y, size: 10.0, text: label.to_owned() });
        self.push(Item::Bar { x: MARGIN + 150.0, y: y - 10.0, w: w.max(0.5), h: 11.0 });
        self.push(Item::Text { x: MARGIN + 156.0 + w, y, size: 10.0, text: n.to_string() });
    }

    fn finish(self) -> Result<Vec<u8>, PdfError> {
        let mut doc = Document::new();
        for items in &self.pages {
            let settings = PageSettings::from_wh(W, H).ok_or_else(|| PdfError::Write("page size".into()))?;
            let mut page = doc.start_page_with(settings);
            let mut s = page.surface();
            for item in items {
                match item {
                    Item::Text { x, y, size, text } => {
                        s.set_fill(Some(Fill::default()));
                        s.draw_text(Point::from_xy(*x, *y), self.font.clone(), *size, text, false, TextDirection::Auto);
                    }
                    Item::Bar { x, y, w, h } => {
                        let mut pb = PathBuilder::new();
                        if let Some(r) = Rect::from_xywh(*x, *y, *w, *h) {
                            pb.push_rect(r);
                        }
                        if let Some(path) = pb.finish() {
                            s.set_fill(Some(Fill { paint: rgb::Color::new(74, 120, 181).into(), ..Fill::default() }));
                            s.draw_path(&path);
                        }
                    }
                }
            }
            s.finish();
            page.finish();
        }
        doc.finish().map_err(|e| PdfError::Write(format!("{e:?}")))
    }
}

/// The PDF of a report.
///
/// # Errors
/// [`PdfError::Font`] when the font is not installed.
pub fn render(r: &SummaryReport) -> Result<Vec<u8>, PdfError> {
    let mut w = Writer::new(font()?);
    let title = match &r.village_name {
        Some(v) => format!("{} · {} 总结报告", r.campaign_name, v),
        None => format!("{} 总结报告", r.campaign_name),
    };
    w.line(18.0, title);
    w.line(
        9.0,
        format!(
            "活动期间 {} 至 {}，统计截至日志位置 {}{}",
            r.period_from,
            r.period_to,
            r.log_position,
            if r.frozen { "，活动结束定稿" } else { "，活动进行中" }
        ),
    );
    if r.frozen {
        w.line(8.0, format!("报告指纹（SHA-256）{}", super::fingerprint_of(r)));
    }
    w.heading("一、总体情况");
    w.line(11.0, format!("受理 {} 件，尚未办结 {} 件，超期 {} 件", r.cases, r.unresolved, r.overdue_count));
    for c in r.by_channel.iter().chain(&r.by_kind) {
        w.line(10.0, format!("{}：{} 件", c.name, c.count));
    }
    w.heading("二、问题分类");
    let max = r.by_category.iter().map(|c| c.count).max().unwrap_or(1);
    for c in &r.by_category {
        w.bar(&c.name, c.count, max);
    }
    w.heading("三、逐周受理情况");
    for p in &r.weekly {
        w.line(10.0, format!("{} 当周：{} 件", p.week, p.count));
    }
    if let Some(c) = super::weekly_caption(r) {
        w.line(9.0, c);
    }
    w.heading("四、活动开展情况");
    let a = &r.activity;
    for (k, v) in [
        ("召开座谈会（次）", a.meetings),
        ("参会代表（人）", a.attendees),
        ("座谈会意见转为诉求（件）", a.opinions),
        ("明察（次）", a.visits_open),
        ("暗访（次）", a.visits_undercover),
        ("发现问题（个）", a.findings),
        ("联系卡印制（张）", a.cards_printed),
        ("联系卡发放（张）", a.cards_handed_out),
        ("凭联系卡反映（件）", a.cards_used),
        ("问卷调查（次）", a.surveys),
        ("回收问卷（份）", a.survey_responses),
    ] {
        w.line(10.0, format!("{k}：{v}"));
    }
    w.heading("五、办理质效指标");
    let k = &r.kpis;
    for (name, rate) in [
        ("及时签收率", &k.timely_sign_for_rate),
        ("响应率", &k.response_rate),
        ("按期办结率", &k.on_time_completion_rate),
        ("回退率", &k.return_rate),
        ("重办率", &k.rework_rate),
        ("有效回访率", &k.follow_up_rate),
        ("满意率", &k.satisfaction_rate),
        ("解决率", &k.resolution_rate),
    ] {
        w.line(10.0, format!("{name}：{} / {} = {}", rate.numerator, rate.denominator, percent(rate)));
    }
    let d = &k.reply_working_days;
    let days = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |m| format!("{m:.1}"));
    w.line(
        10.0,
        format!("受理至首次答复平均 {} 个工作日，90% 在 {} 个工作日内（{} 件）", days(d.mean), days(d.p90), d.count),
    );
    w.line(9.0, super::KPI_WINDOW_NOTE.to_owned());
    w.heading("六、群众满意度");
    let s = &r.satisfaction;
    w.line(
        10.0,
        format!(
            "满意 {}，基本满意 {}，不满意 {}，未评价 {}",
            s.satisfied, s.basically_satisfied, s.dissatisfied, s.unrated
        ),
    );
    w.heading("七、超期未办结");
    if let Some(c) = super::overdue_caption(r) {
        w.line(10.0, c);
    }
    for c in &r.overdue {
        w.line(
            9.0,
            format!(
                "{} {}（{}，{} 到期）",
                c.receipt_code,
                c.category,
                super::html::stage_name(c.stage.as_deref()),
                c.due_at.with_timezone(&domain::calendar::china_offset()).format("%Y-%m-%d")
            ),
        );
    }
    w.heading("八、督办情况");
    w.line(10.0, format!("共督办 {} 件，尚未办结 {} 件", r.supervision.raised, r.supervision.open));
    for c in r.supervision.by_level.iter().chain(&r.supervision.by_trigger) {
        w.line(10.0, format!("{}：{} 件", c.name, c.count));
    }
    w.heading("九、苗头性、倾向性问题");
    if r.emerging.is_empty() {
        w.line(10.0, "本期未发现统计上显著上升的问题");
    }
    for e in &r.emerging {
        w.line(10.0, format!("{}：近一周 {} 件，此前周均 {:.1} 件，q = {:.4}", e.what, e.recent, e.baseline, e.q));
    }
    w.heading("十、问卷调查反映");
    if r.surveys.is_empty() {
        w.line(10.0, "无可比较的问卷");
    }
    for sv in &r.surveys {
        w.line(
            10.0,
            format!(
                "{}：未享受 {}/{} → {}/{}{}",
                sv.policy,
                sv.before.not_received,
                sv.before.answered,
                sv.latest.not_received,
                sv.latest.answered,
                if sv.flagged { "，明显上升" } else { "" }
            ),
        );
    }
    w.finish()
}
