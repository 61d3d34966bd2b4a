//! `huiyin seed-demo`: a realistic Chinese town to try the API on. Idempotent: units and
//! categories that already exist (by name / code) are left as they are.

pub mod campaign;

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

/// The public holidays of 2025 (the State Council's notice of November 2024, 国办发明电〔2024〕12号).
pub const HOLIDAYS_2025: &[(&str, &str)] = &[
    ("2025-01-01", "元旦"),
    ("2025-01-28", "春节"),
    ("2025-01-29", "春节"),
    ("2025-01-30", "春节"),
    ("2025-01-31", "春节"),
    ("2025-02-01", "春节"),
    ("2025-02-02", "春节"),
    ("2025-02-03", "春节"),
    ("2025-02-04", "春节"),
    ("2025-04-04", "清明节"),
    ("2025-04-05", "清明节"),
    ("2025-04-06", "清明节"),
    ("2025-05-01", "劳动节"),
    ("2025-05-02", "劳动节"),
    ("2025-05-03", "劳动节"),
    ("2025-05-04", "劳动节"),
    ("2025-05-05", "劳动节"),
    ("2025-05-31", "端午节"),
    ("2025-06-01", "端午节"),
    ("2025-06-02", "端午节"),
    ("2025-10-01", "国庆节、中秋节"),
    ("2025-10-02", "国庆节、中秋节"),
    ("2025-10-03", "国庆节、中秋节"),
    ("2025-10-04", "国庆节、中秋节"),
    ("2025-10-05", "国庆节、中秋节"),
    ("2025-10-06", "国庆节、中秋节"),
    ("2025-10-07", "国庆节、中秋节"),
    ("2025-10-08", "国庆节、中秋节"),
];

/// Make-up working days (调休) of 2025.
pub const MAKEUP_2025: &[(&str, &str)] = &[
    ("2025-01-26", "春节调休"),
    ("2025-02-08", "春节调休"),
    ("2025-04-27", "劳动节调休"),
    ("2025-09-28", "国庆节调休"),
    ("2025-10-11", "国庆节调休"),
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
    for (year, holidays, makeup) in [(2025, HOLIDAYS_2025, MAKEUP_2025), (2026, HOLIDAYS_2026, MAKEUP_2026)] {
        let mut days = Vec::new();
        for (d, n) in holidays {
            days.push(CalendarDay { day: parse(d)?, workday: false, name: (*n).into() });
        }
        for (d, n) in makeup {
            days.push(CalendarDay { day: parse(d)?, workday: true, name: (*n).into() });
        }
        reference.put_calendar_year(year, &days).await?;
    }
    Ok(format!(
        "seeded {TOWN}: {created_units} new unit(s), {created_categories} new categor(ies), the working calendars of 2025 \
         ({} holidays, {} make-up working days) and 2026 ({}, {})",
        HOLIDAYS_2025.len(),
        MAKEUP_2025.len(),
        HOLIDAYS_2026.len(),
        MAKEUP_2026.len()
    ))
}

/// Texts per category code: (title, description) templates; `{v}` is the village.
fn texts(code: &str) -> &'static [(&'static str, &'static str)] {
    match code {
        "welfare.dibao" => &[
            ("低保评定不公开", "{v}村民反映，今年低保评定没有张榜公示，评议过程不透明，有优亲厚友的嫌疑。"),
            ("低保户资格存疑", "{v}有村民反映，某低保户家中有车有房，不符合低保条件，要求重新核查。"),
        ],
        "welfare.pension" => &[("养老金未按时发放", "{v}多名老人反映，本季度养老金迟迟未到账，询问社保所无人答复。")],
        "welfare.medical" => &[("医保报销手续繁琐", "{v}村民反映，住院费用报销需要来回跑多次，材料要求不一致。")],
        "subsidy.farming" => &[
            ("耕地地力补贴少发", "{v}村民反映，今年耕地地力保护补贴比实际面积少发，村里说不清原因。"),
            ("惠农补贴被截留", "{v}有群众反映，种粮补贴被村干部以各种名义截留克扣。"),
        ],
        "land.homestead" => &[("宅基地审批拖延", "{v}村民申请宅基地半年未批，多次询问国土所没有明确答复。")],
        "land.contract" => &[("土地流转费用纠纷", "{v}村民反映，土地流转费用未按合同支付，村委会协调无果。")],
        "education.fees" => &[("学校乱收费", "{v}家长反映，镇中心小学以资料费名义额外收取费用，没有收据。")],
        "health.clinic" => &[("卫生院服务态度差", "{v}村民反映，在卫生院就诊时医护人员态度生硬，排队时间长。")],
        "conduct.attitude" => {
            &[("干部办事推诿", "{v}村民反映，到镇政府办事被多个窗口来回推诿，门难进、脸难看、事难办。")]
        }
        "conduct.corruption" => &[("村干部吃拿卡要", "{v}有群众反映，村干部在办理证明时索要好处费。")],
        "infra.roads" => &[
            ("村口路灯损坏", "{v}村口路灯损坏已三个月，夜间出行不便，多次反映无人维修。"),
            ("村道坑洼不平", "{v}通村道路坑洼积水，建议尽快修缮。"),
        ],
        "infra.water" => &[("饮用水水质浑浊", "{v}自来水近期浑浊发黄，群众担心饮水安全。")],
        "market.food" => &[("集市销售过期食品", "{v}集市上有摊贩销售过期食品，希望加强监管。")],
        "public.security" => &[("夜间偷盗频发", "{v}近期夜间多次发生偷盗电动车事件，群众要求加强巡逻。")],
        "finance.village" => &[("村务财务不公开", "{v}村民反映，村集体收支多年未公开，要求公开账目。")],
        _ => &[("建议增设便民服务点", "{v}村民建议在村里增设便民服务点，方便老人办理业务。")],
    }
}

const SURNAMES: &[&str] =
    &["张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭"];
const GIVEN: &[&str] =
    &["伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"];

/// What `seed-demo --cases` did.
#[derive(Debug, Clone, Copy)]
pub struct GenerateReport {
    /// Cases written.
    pub cases: u64,
    /// Events written.
    pub events: u64,
    /// Seconds spent generating and writing events.
    pub seconds: f64,
}

/// Generates `n` realistic cases with lifecycles spread over the two years before now, through
/// the domain's own `decide` (so every history is one the service could have written), and
/// bulk-loads their events with their ledger rows.
pub async fn generate_cases(
    reference: &ReferenceData,
    loader: &mut infra::bulk::BulkLoader,
    vault: &infra::vault::Vault,
    n: u64,
    seed: u64,
) -> Result<GenerateReport, Box<dyn std::error::Error + Send + Sync>> {
    use domain::events::{Channel, FeedbackMethod, Outcome, Rating};
    use domain::{
        Actor, ActorId, CaseId, Command, Complainant, Context, Description, Reason, Registration, Role, Text, Title,
        Urgency, decide, evolve,
    };
    use infra::bulk::{BulkCase, BulkKey};
    use infra::{Metadata, NewEvent};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let units = reference.list_units(false).await?;
    let villages: Vec<_> =
        units.iter().filter(|u| matches!(u.kind, UnitKind::Village | UnitKind::Farm | UnitKind::Community)).collect();
    let departments: Vec<_> = units.iter().filter(|u| u.kind == UnitKind::Department).collect();
    let categories = reference.list_categories().await?;
    if villages.is_empty() || departments.is_empty() || categories.is_empty() {
        return Err("seed the demo town first (units and categories)".into());
    }
    let calendar = reference.working_calendar().await?;
    let units = reference.unit_tree().await?;
    let now = domain::truncate_to_micros(chrono::Utc::now());
    // A case received in a taking-part village on a day of a campaign's phase is tagged with it,
    // as registration through the service tags it.
    let campaigns: Vec<domain::records::campaign::Campaign> = infra::records::list(
        reference.pool(),
        &infra::records::RecordFilter {
            stream_type: "campaign",
            include_restricted: true,
            limit: 1000,
            ..Default::default()
        },
    )
    .await?
    .into_iter()
    .filter_map(|r| serde_json::from_value(r.doc).ok())
    .collect();
    let actors: Vec<Actor> =
        [("clerk-001", Role::Clerk), ("handler-001", Role::Handler), ("supervisor-001", Role::Supervisor)]
            .into_iter()
            .map(|(id, role)| Actor { id: ActorId::parse(id).unwrap_or_else(|_| unreachable!()), role, unit: None })
            .collect();
    let channels = [
        (Channel::Phone, 25),
        (Channel::Symposium, 15),
        (Channel::Web, 15),
        (Channel::Visit, 10),
        (Channel::ContactCard, 10),
        (Channel::WalkIn, 10),
        (Channel::Questionnaire, 5),
        (Channel::Email, 5),
        (Channel::Letter, 5),
    ];
    let pick_channel = |rng: &mut StdRng| {
        let mut x = rng.gen_range(0..100);
        for (c, w) in channels {
            if x < w {
                return c;
            }
            x -= w;
        }
        Channel::Phone
    };
    let (mut written_cases, mut written_events) = (0u64, 0u64);
    let batch_size = 5000u64;
    let mut left = n;
    while left > 0 {
        let this = left.min(batch_size);
        left -= this;
        let mut batch = Vec::with_capacity(this as usize);
        let mut keys = Vec::new();
        for _ in 0..this {
            let id = CaseId::from_uuid(uuid::Uuid::new_v4());
            let age_days: f64 = 730.0 * rng.gen_range(0.0f64..1.0).powf(1.3);
            let received_at = domain::truncate_to_micros(now - chrono::Duration::seconds((age_days * 86400.0) as i64));
            let category = &categories[rng.gen_range(0..categories.len())];
            let village = villages[rng.gen_range(0..villages.len())];
            let (title, desc) = texts(&category.code)[rng.gen_range(0..texts(&category.code).len())];
            let description = desc.replace("{v}", &village.name);
            let urgent = rng.gen_bool(0.05);
            let anonymous = rng.gen_bool(0.2);
            let sealed = if anonymous {
                None
            } else {
                let name =
                    format!("{}{}", SURNAMES[rng.gen_range(0..SURNAMES.len())], GIVEN[rng.gen_range(0..GIVEN.len())]);
                let phone = format!("1{}{:09}", rng.gen_range(3..=9), rng.gen_range(0..1_000_000_000u64));
                let data =
                    infra::vault::PersonalData { name: Some(name), phone: Some(phone), id_number: None, email: None };
                let (sealed, wrapped) = vault.seal_detached(&data)?;
                keys.push(BulkKey { subject: sealed.subject.as_uuid(), wrapped });
                Some(sealed)
            };
            let kind = match category.kind.as_deref() {
                Some("suggestion") => domain::CaseKind::Suggestion,
                Some("report") => domain::CaseKind::Report,
                _ => domain::CaseKind::Complaint,
            };
            let registration = Registration {
                id,
                channel: pick_channel(&mut rng),
                kind,
                title: Title::parse(title)?,
                description: Description::parse(&description)?,
                category: Some(category.id),
                village: Some(village.id),
                accused_unit: None,
                urgency: if urgent { Urgency::Urgent } else { Urgency::Normal },
                received_at,
                complainant: Complainant {
                    anonymous,
                    sealed,
                    reachable_by: if anonymous { Vec::new() } else { vec![domain::ContactChannel::Sms] },
                },
                campaign: campaigns.iter().find_map(|c| {
                    let day = domain::calendar::local_date(received_at);
                    c.phase_on(day)
                        .filter(|_| c.includes(village.id))
                        .map(|phase| domain::records::CampaignTag { campaign: c.id, phase })
                }),
                source: None,
                location: None,
            };
            let unit = category.default_unit_id.unwrap_or(departments[rng.gen_range(0..departments.len())].id);
            // The plan of this case's life, by its age: old cases are mostly closed, young ones open.
            let stage_reached = {
                let x: f64 = rng.gen_range(0.0..1.0);
                if age_days > 60.0 {
                    if x < 0.93 {
                        6
                    } else if x < 0.96 {
                        1
                    } else if x < 0.98 {
                        2
                    } else {
                        3
                    }
                } else if age_days > 15.0 {
                    if x < 0.65 {
                        6
                    } else if x < 0.85 {
                        4
                    } else if x < 0.95 {
                        2
                    } else {
                        3
                    }
                } else if x < 0.25 {
                    0
                } else if x < 0.65 {
                    2
                } else if x < 0.8 {
                    3
                } else {
                    4
                }
            };
            let mut t = received_at;
            let mut state = None;
            let mut events: Vec<NewEvent> = Vec::with_capacity(8);
            let step = |cmd: Command,
                        role: usize,
                        at: chrono::DateTime<chrono::Utc>,
                        state: &mut Option<domain::Case>,
                        events: &mut Vec<NewEvent>|
             -> bool {
                let at = domain::truncate_to_micros(at.min(now));
                // The handler works for the case's unit.
                let actor = Actor { unit: (role == 1).then_some(unit), ..actors[role].clone() };
                let ctx = Context {
                    now: at.max(received_at),
                    actor: &actor,
                    calendar: &calendar,
                    policy: &category.policy,
                    units: &units,
                    linked_accused: &[],
                };
                match decide(state.as_ref(), &cmd, &ctx) {
                    Ok(evs) => {
                        for e in evs {
                            *state = evolve(state.take(), id, &e, ctx.now).ok();
                            events.push(NewEvent {
                                event: e,
                                occurred_at: ctx.now,
                                metadata: Metadata {
                                    actor_id: actors[role].id.as_str().to_owned(),
                                    actor_role: actors[role].role.as_str().to_owned(),
                                    request_id: None,
                                    idempotency_key: None,
                                    correlation_id: None,
                                },
                            });
                        }
                        true
                    }
                    Err(_) => false,
                }
            };
            let hours =
                |rng: &mut StdRng, lo: f64, hi: f64| chrono::Duration::minutes((rng.gen_range(lo..hi) * 60.0) as i64);
            step(
                Command::Register(Box::new(registration)),
                0,
                received_at.max(now - chrono::Duration::days(800)),
                &mut state,
                &mut events,
            );
            // A received_at in the past is recorded at intake; the first event is stamped then too.
            // The clerk tells an identified citizen the case was received (受理告知).
            let notice = |kind: domain::NoticeKind, content: &str| -> Result<Command, StoreError> {
                Ok(Command::NotifyCitizen {
                    kind,
                    method: FeedbackMethod::Sms,
                    content: Text::parse(content).map_err(|_| StoreError::Vault("bad demo text"))?,
                    receipt_code_given: true,
                    notified_at: None,
                })
            };
            if stage_reached == 1 {
                t += hours(&mut rng, 2.0, 48.0);
                step(
                    Command::Reject {
                        code: domain::NonAcceptanceCode::OutOfRemit,
                        reason: Reason::parse("不属于纪检监察受理范围，已告知反映人向有关部门反映")?,
                        referred_to: Some(Text::parse("镇人民政府有关部门")?),
                    },
                    0,
                    t,
                    &mut state,
                    &mut events,
                );
                t += hours(&mut rng, 1.0, 24.0);
                step(
                    notice(
                        domain::NoticeKind::NonAcceptance,
                        "您反映的问题不属于纪检监察受理范围，已告知向有关部门反映",
                    )?,
                    0,
                    t,
                    &mut state,
                    &mut events,
                );
                t += hours(&mut rng, 1.0, 24.0);
                step(Command::Close { note: None }, 2, t, &mut state, &mut events);
            } else if stage_reached >= 2 {
                // 受理, then the notice of it (受理告知) to an identified citizen.
                t += hours(&mut rng, 0.5, 24.0);
                step(Command::Accept, 0, t, &mut state, &mut events);
                t += hours(&mut rng, 0.5, 48.0);
                step(
                    notice(domain::NoticeKind::Acknowledgement, "您反映的问题已受理，请凭受理编号查询办理进度")?,
                    0,
                    t,
                    &mut state,
                    &mut events,
                );
                t += hours(&mut rng, 1.0, 72.0);
                step(
                    Command::Assign { unit, co_units: Vec::new(), due_at: None, note: None, tier: None },
                    0,
                    t,
                    &mut state,
                    &mut events,
                );
                // The unit signs for it within hours (签收).
                t += hours(&mut rng, 0.5, 20.0);
                step(Command::SignFor, 1, t, &mut state, &mut events);
                if rng.gen_bool(0.03) {
                    t += hours(&mut rng, 1.0, 48.0);
                    step(
                        Command::Escalate { reason: Reason::parse("群众反映强烈，列入督办")? },
                        2,
                        t,
                        &mut state,
                        &mut events,
                    );
                }
                let rounds = if stage_reached >= 6 && rng.gen_bool(0.12) { 2 } else { 1 };
                for round in 1..=rounds {
                    if stage_reached < 3 {
                        break;
                    }
                    t += hours(&mut rng, 12.0, 24.0 * 16.0);
                    let outcome =
                        [Outcome::Resolved, Outcome::Resolved, Outcome::PartiallyResolved, Outcome::Explained]
                            [rng.gen_range(0..4)];
                    step(
                        Command::Handle {
                            outcome,
                            result: Text::parse("经调查核实，已督促整改到位，相关情况已向群众说明。")?,
                        },
                        1,
                        t,
                        &mut state,
                        &mut events,
                    );
                    if stage_reached < 4 {
                        break;
                    }
                    t += hours(&mut rng, 2.0, 60.0);
                    let method =
                        [FeedbackMethod::Phone, FeedbackMethod::InPerson, FeedbackMethod::Sms][rng.gen_range(0..3)];
                    step(
                        Command::FeedBack { method, content: Text::parse("已向反映人反馈办理结果。")? },
                        1,
                        t,
                        &mut state,
                        &mut events,
                    );
                    if stage_reached < 6 {
                        break;
                    }
                    t += hours(&mut rng, 24.0, 120.0);
                    let rating = if round < rounds {
                        Rating::Dissatisfied
                    } else if rng.gen_bool(0.8) {
                        Rating::Satisfied
                    } else {
                        Rating::BasicallySatisfied
                    };
                    step(
                        Command::RecordSatisfaction {
                            rating,
                            comment: None,
                            method: domain::RatingMethod::Phone,
                            solved: Some(rating != Rating::Dissatisfied),
                        },
                        0,
                        t,
                        &mut state,
                        &mut events,
                    );
                }
                if stage_reached >= 6 {
                    t += hours(&mut rng, 1.0, 48.0);
                    step(Command::Close { note: Some(Text::parse("办结归档")?) }, 2, t, &mut state, &mut events);
                }
            }
            if !events.is_empty() {
                batch.push(BulkCase { id, events });
            }
        }
        written_events += loader.load(&batch, &keys).await?;
        written_cases += batch.len() as u64;
    }
    Ok(GenerateReport { cases: written_cases, events: written_events, seconds: started.elapsed().as_secs_f64() })
}

/// The Open311 api_key of the demo (channel `web`): for trying the facade on a demo database
/// (`make run`, `make seed-demo`). Revoke it (`DELETE /api/v1/open311-keys/{id}`) anywhere else.
pub const DEMO_OPEN311_KEY: &str = "huiyin-demo-open311-key";

/// What the demo offers integrators: the demo Open311 api_key, and the extra fields the road and
/// street-light category asks for. Idempotent.
pub async fn seed_integrations(reference: &ReferenceData) -> Result<String, StoreError> {
    let hash = crate::routes::integrations::key_hash(DEMO_OPEN311_KEY);
    let pool = reference.pool();
    if infra::access::key_by_hash(pool, &hash).await?.is_none() {
        infra::access::create_key(pool, &hash, "演示平台（仅供演示）", "web", "huiyin seed-demo").await?;
    }
    let roads = reference.list_categories().await?.into_iter().find(|c| c.code == "infra.roads");
    if let Some(c) = roads.filter(|c| c.attributes.as_array().is_none_or(Vec::is_empty)) {
        let attributes = serde_json::json!([
            {"variable": true, "code": "pole", "datatype": "string", "required": false,
             "datatype_description": "灯杆上喷涂的编号，如 A-17", "order": 1, "description": "路灯杆编号", "values": []},
            {"variable": true, "code": "fault", "datatype": "singlevaluelist", "required": true,
             "datatype_description": null, "order": 2, "description": "问题类型",
             "values": [{"key": "light", "name": "路灯不亮"}, {"key": "pothole", "name": "路面坑洼"}, {"key": "other", "name": "其他"}]}
        ]);
        reference.set_category_attributes(c.id, &attributes).await?;
    }
    Ok(format!("Open311: the demo api_key is {DEMO_OPEN311_KEY} (channel web); infra.roads asks for its fields"))
}
