//! `huiyin seed-demo`: a realistic Chinese town to try the API on. Idempotent: units and
//! categories that already exist (by name / code) are left as they are.

use chrono::NaiveDate;
use domain::{DeadlinePolicy, Limit, UnitId, UnitKind};
use infra::StoreError;
use infra::reference::{CalendarDay, CategoryInput, ReferenceData};

/// The town.
pub const TOWN: &str = "青山镇";

/// Villages, farms and communities of the town.
pub const VILLAGES: &[(&str, UnitKind)] = &[
    ("东岭村", UnitKind::Village),
    ("西坪村", UnitKind::Village),
    ("南溪村", UnitKind::Village),
    ("北山村", UnitKind::Village),
    ("石桥村", UnitKind::Village),
    ("柳塘村", UnitKind::Village),
    ("杨家湾村", UnitKind::Village),
    ("李家庄村", UnitKind::Village),
    ("新丰村", UnitKind::Village),
    ("红旗村", UnitKind::Village),
    ("青山林场", UnitKind::Farm),
    ("镇南社区", UnitKind::Community),
];

/// The usual departments.
pub const DEPARTMENTS: &[&str] = &[
    "党政办公室",
    "教育办",
    "卫生院",
    "民政办",
    "国土所",
    "农业服务中心",
    "社保所",
    "财政所",
    "城建办",
    "水利站",
    "派出所",
    "市场监管所",
];

/// The category taxonomy: code, name, kind, department, handling working days (None = default).
pub const CATEGORIES: &[(&str, &str, &str, &str, Option<u16>)] = &[
    ("welfare.dibao", "低保评定", "complaint", "民政办", Some(10)),
    ("welfare.pension", "养老保险待遇", "complaint", "社保所", None),
    ("welfare.medical", "医保报销", "complaint", "社保所", None),
    ("subsidy.farming", "惠农补贴发放", "complaint", "农业服务中心", Some(10)),
    ("land.homestead", "宅基地审批", "complaint", "国土所", None),
    ("land.contract", "土地承包纠纷", "report", "国土所", None),
    ("education.fees", "教育乱收费", "complaint", "教育办", Some(10)),
    ("health.clinic", "卫生院服务", "complaint", "卫生院", None),
    ("conduct.attitude", "干部作风态度", "complaint", "党政办公室", Some(10)),
    ("conduct.corruption", "优亲厚友、吃拿卡要", "report", "党政办公室", Some(10)),
    ("infra.roads", "道路路灯设施", "suggestion", "城建办", None),
    ("infra.water", "饮水与水利", "suggestion", "水利站", None),
    ("market.food", "食品安全", "complaint", "市场监管所", Some(5)),
    ("public.security", "治安问题", "report", "派出所", Some(5)),
    ("finance.village", "村务财务公开", "report", "财政所", None),
    ("other.suggestion", "其他意见建议", "suggestion", "党政办公室", None),
];

/// This year's public holidays and make-up working days (the State Council's 2026 notice).
pub const HOLIDAYS_2026: &[(&str, &str)] = &[
    ("2026-01-01", "元旦"),
    ("2026-01-02", "元旦"),
    ("2026-01-03", "元旦"),
    ("2026-02-15", "春节"),
    ("2026-02-16", "春节"),
    ("2026-02-17", "春节"),
    ("2026-02-18", "春节"),
    ("2026-02-19", "春节"),
    ("2026-02-20", "春节"),
    ("2026-02-21", "春节"),
    ("2026-02-22", "春节"),
    ("2026-02-23", "春节"),
    ("2026-04-04", "清明节"),
    ("2026-04-05", "清明节"),
    ("2026-04-06", "清明节"),
    ("2026-05-01", "劳动节"),
    ("2026-05-02", "劳动节"),
    ("2026-05-03", "劳动节"),
    ("2026-05-04", "劳动节"),
    ("2026-05-05", "劳动节"),
    ("2026-06-19", "端午节"),
    ("2026-06-20", "端午节"),
    ("2026-06-21", "端午节"),
    ("2026-09-25", "中秋节"),
    ("2026-09-26", "中秋节"),
    ("2026-09-27", "中秋节"),
    ("2026-10-01", "国庆节"),
    ("2026-10-02", "国庆节"),
    ("2026-10-03", "国庆节"),
    ("2026-10-04", "国庆节"),
    ("2026-10-05", "国庆节"),
    ("2026-10-06", "国庆节"),
    ("2026-10-07", "国庆节"),
];

/// Make-up working days (调休) of 2026.
pub const MAKEUP_2026: &[(&str, &str)] = &[
    ("2026-01-04", "元旦调休"),
    ("2026-02-14", "春节调休"),
    ("2026-02-28", "春节调休"),
    ("2026-05-09", "劳动节调休"),
    ("2026-09-20", "国庆节调休"),
    ("2026-10-10", "国庆节调休"),
];

/// Loads the demo town and returns a one-line summary.
pub async fn seed_demo(reference: &ReferenceData) -> Result<String, StoreError> {
    let existing = reference.list_units(true).await?;
    let find = |name: &str| existing.iter().find(|u| u.name == name).map(|u| u.id);
    let town = match find(TOWN) {
        Some(id) => id,
        None => reference.create_unit(TOWN, UnitKind::Town, None).await?.id,
    };
    let mut created_units = 0;
    for (name, kind) in VILLAGES {
        if find(name).is_none() {
            reference.create_unit(name, *kind, Some(town)).await?;
            created_units += 1;
        }
    }
    let mut departments: Vec<(&str, UnitId)> = Vec::new();
    for name in DEPARTMENTS {
        let id = match find(name) {
            Some(id) => id,
            None => {
                created_units += 1;
                reference.create_unit(name, UnitKind::Department, Some(town)).await?.id
            }
        };
        departments.push((name, id));
    }
    let categories = reference.list_categories().await?;
    let mut created_categories = 0;
    for (code, name, kind, dept, days) in CATEGORIES {
        if categories.iter().any(|c| c.code == *code) {
            continue;
        }
        let mut policy = DeadlinePolicy::statutory_default();
        if let Some(d) = days {
            policy.handle = Limit::WorkingDays(*d);
        }
        let default_unit_id = departments.iter().find(|(n, _)| n == dept).map(|(_, id)| *id);
        let input = CategoryInput {
            code: (*code).into(),
            name: (*name).into(),
            kind: Some((*kind).into()),
            default_unit_id,
            policy,
            active: true,
        };
        reference.create_category(&input).await?;
        created_categories += 1;
    }
    let parse = |d: &str| {
        NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| StoreError::Vault("bad date in the demo calendar"))
    };
    let mut days = Vec::new();
    for (d, n) in HOLIDAYS_2026 {
        days.push(CalendarDay { day: parse(d)?, workday: false, name: (*n).into() });
    }
    for (d, n) in MAKEUP_2026 {
        days.push(CalendarDay { day: parse(d)?, workday: true, name: (*n).into() });
    }
    reference.put_calendar_year(2026, &days).await?;
    Ok(format!(
        "seeded {TOWN}: {created_units} new unit(s), {created_categories} new categor(ies), {} holidays and {} make-up working days in 2026",
        HOLIDAYS_2026.len(),
        MAKEUP_2026.len()
    ))
}
