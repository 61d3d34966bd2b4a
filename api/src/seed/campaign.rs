//! The demo campaign (`huiyin seed-demo`): a 纠风工作基层行 in progress over the demo town, with its
//! phases around today, three symposium meetings whose opinions are cases, an open and an
//! undercover visit, a contact-card batch with a card that brought a case, and a questionnaire
//! with sixty answers. Written through the domain and the store as the service writes them (the
//! same events, chains and projections); loaded once (a second run finds the campaign).

use chrono::{DateTime, Duration, Utc};
use domain::records::campaign::{self, Campaign, PhaseSpan};
use domain::records::card::{self, CardBatch};
use domain::records::meeting::{self, Attendance, AttendeeType, Meeting, MeetingEvent};
use domain::records::survey::{self, Answer, Question, QuestionKind, Response, Survey};
use domain::records::visit::{self, Place, PlaceType, Rectification, Visit, VisitEvent, VisitMode};
use domain::records::{CampaignTag, CaseSource, Phase, Record, SourceType};
use domain::{
    Actor, ActorId, CaseId, CaseKind, Channel, Command, Complainant, Context, Description, Name, RecordId,
    Registration, Role, Text, Title, UnitId, Urgency, decide, evolve,
};
use infra::Metadata;
use infra::records::RecordAppend;
use infra::reference::ReferenceData;
use infra::store::NewCaseAppend;
use uuid::Uuid;

/// The demo campaign's name (how a second run finds it).
pub const CAMPAIGN: &str = "2026年纠风工作基层行";

fn metadata() -> Metadata {
    Metadata {
        actor_id: "seed-demo".into(),
        actor_role: Role::Clerk.as_str().into(),
        request_id: None,
        idempotency_key: None,
        correlation_id: None,
    }
}

fn t<T>(r: Result<T, domain::ValidationError>) -> Result<T, String> {
    r.map_err(|e| format!("{}: {}", e.field, e.message))
}

/// A record's events decided one after another against its state, then appended at once.
struct Build<R: Record> {
    id: RecordId,
    state: Option<R>,
    events: Vec<R::Event>,
    at: DateTime<Utc>,
}

impl<R: Record> Build<R> {
    fn new(at: DateTime<Utc>) -> Self {
        Self { id: RecordId::from_uuid(Uuid::new_v4()), state: None, events: Vec::new(), at }
    }

    fn push(&mut self, events: Vec<R::Event>) -> Result<&R, String> {
        for e in events {
            self.state = Some(R::apply(self.state.take(), self.id, &e, self.at).map_err(|e| e.to_string())?);
            self.events.push(e);
        }
        self.state.as_ref().ok_or_else(|| "no events".to_owned())
    }

    async fn save(self, pool: &infra::Pool, cases: &[NewCaseAppend]) -> Result<R, String> {
        let state = self.state.ok_or("no events")?;
        let append =
            RecordAppend::new(self.id, 0, infra::hash::GENESIS, &self.events, self.at, &metadata(), None, &state);
        infra::records::append_with_cases(pool, &append, cases).await.map_err(|e| e.to_string())?;
        Ok(state)
    }
}

/// What a new case needs beyond its texts.
struct CaseFacts {
    channel: Channel,
    kind: CaseKind,
    village: Option<UnitId>,
    received_at: DateTime<Utc>,
    campaign: Option<CampaignTag>,
    source: CaseSource,
}

/// Decides a registration as the service does, for a case appended beside its record.
async fn new_case(
    reference: &ReferenceData,
    id: CaseId,
    title: &str,
    description: &str,
    f: CaseFacts,
) -> Result<NewCaseAppend, String> {
    let policy = reference.policy_for(None).await.map_err(|e| e.to_string())?;
    let calendar = reference.working_calendar().await.map_err(|e| e.to_string())?;
    let units = reference.unit_tree().await.map_err(|e| e.to_string())?;
    let actor = Actor { id: t(ActorId::parse("seed-demo"))?, role: Role::Clerk, unit: None };
    let now = domain::truncate_to_micros(Utc::now());
    let ctx = Context { now, actor: &actor, calendar: &calendar, policy: &policy, units: &units, linked_accused: &[] };
    let registration = Registration {
        id,
        channel: f.channel,
        kind: f.kind,
        title: t(Title::parse(title))?,
        description: t(Description::parse(description))?,
        category: None,
        village: f.village,
        accused_unit: None,
        urgency: Urgency::Normal,
        received_at: f.received_at,
        complainant: Complainant { anonymous: true, sealed: None, reachable_by: Vec::new() },
        campaign: f.campaign,
        source: Some(f.source),
        location: None,
    };
    let events = decide(None, &Command::Register(Box::new(registration)), &ctx).map_err(|e| e.to_string())?;
    let mut case = None;
    for e in &events {
        case = Some(evolve(case, id, e, now).map_err(|e| e.to_string())?);
    }
    let stamped: Vec<infra::NewEvent> =
        events.into_iter().map(|event| infra::NewEvent { event, occurred_at: now, metadata: metadata() }).collect();
    Ok(NewCaseAppend::new(id, &stamped, &case.ok_or("no case")?))
}

/// Loads the demo campaign unless it is there; returns a one-line summary.
pub async fn seed_campaign(pool: &infra::Pool, reference: &ReferenceData) -> Result<String, String> {
    let existing = infra::records::list(
        pool,
        &infra::records::RecordFilter {
            stream_type: Campaign::STREAM,
            include_restricted: true,
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    if existing.iter().any(|r| r.doc["name"] == CAMPAIGN) {
        return Ok("the demo campaign is already loaded".into());
    }
    let units = reference.list_units(false).await.map_err(|e| e.to_string())?;
    let unit = |name: &str| units.iter().find(|u| u.name == name).map(|u| u.id).ok_or(format!("no unit {name}"));
    let town = unit(super::TOWN)?;
    let villages: Vec<UnitId> = super::VILLAGES.iter().map(|(n, _)| unit(n)).collect::<Result<Vec<_>, _>>()?;
    let now = domain::truncate_to_micros(Utc::now());
    let today = domain::records::china_day(now);
    let day = |d: i64| today + Duration::days(d);
    // A moment `d` days ago, at 10:00 China Standard Time.
    let at = |d: i64| {
        let t = day(-d).and_hms_opt(2, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
        t.min(now)
    };
    let text = |s: &str| t(Text::parse(s));
    let name = |s: &str| t(Name::parse(s));

    // The campaign: preparation two months ago, implementation until a month from now.
    let mut c = Build::<Campaign>::new(now);
    let phases = vec![
        PhaseSpan { phase: Phase::Preparation, from: day(-75), to: day(-61) },
        PhaseSpan { phase: Phase::Implementation, from: day(-60), to: day(30) },
        PhaseSpan { phase: Phase::Summary, from: day(31), to: day(60) },
    ];
    let docs = vec![
        campaign::Document {
            kind: campaign::DocumentKind::Plan,
            title: t(Title::parse("青山镇2026年纠风工作基层行实施方案"))?,
            content: text("一、指导思想。二、工作目标：件件有回音。三、方法步骤：筹备、实施、总结三个阶段。")?,
        },
        campaign::Document {
            kind: campaign::DocumentKind::Mobilisation,
            title: t(Title::parse("动员部署会议记录"))?,
            content: text("镇纪委召开动员部署会，各村（场、居）参加。")?,
        },
    ];
    c.push(
        campaign::launch(t(Title::parse(CAMPAIGN))?, town, villages.clone(), phases, docs)
            .map_err(|e| e.to_string())?,
    )?;
    let campaign = c.save(pool, &[]).await?;
    let tag = |d: i64| {
        campaign.phase_on(domain::records::china_day(at(d))).map(|phase| CampaignTag { campaign: campaign.id, phase })
    };

    // Three symposium meetings, their opinions as cases.
    let meetings = [
        (
            0,
            40,
            24,
            &[
                ("低保评定不公开", "村民代表反映：本村低保评定没有张榜公示。"),
                ("村道路灯损坏", "村口路灯坏了三个月无人修。"),
            ][..],
        ),
        (1, 25, 18, &[("耕地地力保护补贴未到位", "部分农户反映今年的耕地地力保护补贴尚未发放。")][..]),
        (
            2,
            10,
            27,
            &[
                ("卫生院服务态度差", "村民反映卫生院值班人员态度生硬。"),
                ("垃圾清运不及时", "垃圾桶满溢，清运不及时。"),
                ("建议公开村务账目", "建议每季度公开村务收支。"),
            ][..],
        ),
    ];
    let mut opinions = 0;
    for (v, ago, attendees, raised) in meetings {
        let mut m = Build::<Meeting>::new(at(ago));
        let ids: Vec<CaseId> = raised.iter().map(|_| CaseId::from_uuid(Uuid::new_v4())).collect();
        let first = m
            .push(vec![MeetingEvent::Recorded(meeting::Recorded {
                topic: t(Title::parse("惠民政策落实情况座谈会"))?,
                held_on: day(-ago),
                venue: name("村委会会议室")?,
                host_unit: villages[v],
                campaign: Some(campaign.id),
                chair: name("镇纪委 李书记")?,
                recorder: name("镇纪委 王干事")?,
                attendance: vec![
                    Attendance { attendee_type: AttendeeType::NpcDeputy, count: 2 },
                    Attendance { attendee_type: AttendeeType::ConductSupervisor, count: 2 },
                    Attendance { attendee_type: AttendeeType::VillagerRepresentative, count: attendees - 4 },
                ],
                minutes: Some(text("会议通报了纠风工作基层行安排，听取了代表意见。")?),
            })])?
            .clone();
        let pairs: Vec<(Option<u32>, CaseId)> = ids.iter().map(|id| (None, *id)).collect();
        let links = meeting::register_opinions(&first, &pairs).map_err(|e| e.to_string())?;
        m.push(links)?;
        let mut cases = Vec::new();
        for (i, ((title, description), id)) in raised.iter().zip(&ids).enumerate() {
            let source = CaseSource { source_type: SourceType::Meeting, record: m.id, item: (i + 1).to_string() };
            let facts = CaseFacts {
                channel: Channel::Symposium,
                kind: if title.starts_with("建议") { CaseKind::Suggestion } else { CaseKind::Complaint },
                village: Some(villages[v]),
                received_at: at(ago),
                campaign: tag(ago),
                source,
            };
            cases.push(new_case(reference, *id, title, description, facts).await?);
            opinions += 1;
        }
        m.save(pool, &cases).await?;
    }

    // An open visit with a finding, its rectification and re-check, the finding a case; and an
    // undercover visit, not yet disclosed.
    let mut v = Build::<Visit>::new(at(20));
    v.push(vec![VisitEvent::Recorded(visit::Recorded {
        mode: VisitMode::Open,
        visited_on: day(-20),
        organiser: town,
        team: vec![name("镇纪委 张")?, name("镇纪委 刘")?],
        places: vec![
            Place { place_type: PlaceType::School, name: name("南溪村小学")?, village: Some(villages[2]) },
            Place { place_type: PlaceType::Clinic, name: name("南溪村卫生室")?, village: Some(villages[2]) },
        ],
        campaign: Some(campaign.id),
    })])?;
    let state = v
        .push(
            visit::record_finding(
                v.state.as_ref().ok_or("no visit")?,
                text("学校食堂未公示收费标准。")?,
                vec![text("现场照片 3 张")?],
                Some(Rectification { demand: text("一周内公示收费标准。")?, due_on: day(-13) }),
            )
            .map_err(|e| e.to_string())?,
        )?
        .clone();
    v.push(
        visit::recheck(&state, 1, day(-12), true, Some(text("已在食堂门口张贴公示。")?)).map_err(|e| e.to_string())?,
    )?;
    let finding_case = CaseId::from_uuid(Uuid::new_v4());
    let state = v.state.clone().ok_or("no visit")?;
    v.push(visit::finding_became_case(&state, 1, finding_case).map_err(|e| e.to_string())?)?;
    let facts = CaseFacts {
        channel: Channel::Visit,
        kind: CaseKind::Complaint,
        village: Some(villages[2]),
        received_at: at(20),
        campaign: tag(20),
        source: CaseSource { source_type: SourceType::Visit, record: v.id, item: "1".into() },
    };
    let case = new_case(reference, finding_case, "学校食堂收费不公开", "学校食堂未公示收费标准。", facts).await?;
    v.save(pool, &[case]).await?;
    let mut u = Build::<Visit>::new(at(5));
    u.push(vec![VisitEvent::Recorded(visit::Recorded {
        mode: VisitMode::Undercover,
        visited_on: day(-5),
        organiser: town,
        team: vec![name("镇纪委 赵")?],
        places: vec![Place { place_type: PlaceType::Firm, name: name("石桥村砖厂")?, village: Some(villages[4]) }],
        campaign: Some(campaign.id),
    })])?;
    let state = u.state.clone().ok_or("no visit")?;
    u.push(
        visit::record_finding(&state, text("工作时间有村干部在厂内打牌。")?, vec![text("录像一段")?], None)
            .map_err(|e| e.to_string())?,
    )?;
    u.save(pool, &[]).await?;

    // A card batch for 东岭村: cards 1001–1500, the first hundred handed out, card 1050 called.
    let mut b = Build::<CardBatch>::new(at(50));
    b.push(
        card::print(card::Printed {
            serial_from: 1001,
            serial_to: 1500,
            phone: name("0571-12345678")?,
            email: name("jiufeng@qingshan.gov.cn")?,
            village: villages[0],
            delivered_on: day(-50),
            campaign: Some(campaign.id),
        })
        .map_err(|e| e.to_string())?,
    )?;
    let state = b.state.clone().ok_or("no batch")?;
    b.push(card::hand_out(&state, 1001, 1100, day(-49), None).map_err(|e| e.to_string())?)?;
    let card_case = CaseId::from_uuid(Uuid::new_v4());
    let state = b.state.clone().ok_or("no batch")?;
    b.push(card::use_card(&state, 1050, card_case, day(-30)).map_err(|e| e.to_string())?)?;
    let facts = CaseFacts {
        channel: Channel::ContactCard,
        kind: CaseKind::Report,
        village: Some(villages[0]),
        received_at: at(30),
        campaign: tag(30),
        source: CaseSource { source_type: SourceType::CardBatch, record: b.id, item: "1050".into() },
    };
    let case =
        new_case(reference, card_case, "村干部优亲厚友", "凭联系卡来电反映：危房改造名额优先给了村干部亲属。", facts)
            .await?;
    b.save(pool, &[case]).await?;

    // A questionnaire with sixty answers over three villages; two complaints became cases.
    let mut s = Build::<Survey>::new(at(15));
    let q = |key: &str, text: &str, kind, options: &[&str], policy: Option<&str>| -> Result<Question, String> {
        Ok(Question {
            key: key.into(),
            text: t(Title::parse(text))?,
            kind,
            options: options.iter().map(|o| name(o)).collect::<Result<_, _>>()?,
            policy: policy.map(|p| t(Title::parse(p))).transpose()?,
        })
    };
    s.push(
        survey::create(survey::Created {
            title: t(Title::parse("惠农政策落实情况问卷"))?,
            respondent_type: name("村民")?,
            surveyed_on: day(-15),
            place: name("各村村委会")?,
            surveyor: name("镇纪委 王")?,
            campaign: Some(campaign.id),
            unit: town,
            questions: vec![
                q(
                    "subsidy",
                    "耕地地力保护补贴是否已到位？",
                    QuestionKind::SingleChoice,
                    &["已到位", "部分到位", "未到位"],
                    Some("耕地地力保护补贴"),
                )?,
                q("openness", "对村务公开的评价（1–5）", QuestionKind::Rating, &[], None)?,
                q("card", "是否收到纠风联系卡？", QuestionKind::YesNo, &[], None)?,
                q("other", "其他意见和建议", QuestionKind::FreeText, &[], None)?,
            ],
        })
        .map_err(|e| e.to_string())?,
    )?;
    let mut responses = Vec::new();
    let mut cases = Vec::new();
    let subsidy = ["已到位", "部分到位", "未到位"];
    for i in 0..60u32 {
        let village = villages[(i % 3) as usize];
        let mut answers = std::collections::BTreeMap::new();
        answers.insert("subsidy".to_owned(), Answer::Choice(name(subsidy[((i * 7) % 3) as usize])?));
        answers.insert("openness".to_owned(), Answer::Rating(u8::try_from(i % 5 + 1).unwrap_or(3)));
        answers.insert("card".to_owned(), Answer::YesNo(i % 4 != 0));
        let id = Uuid::new_v4();
        let case = if i % 30 == 7 {
            let complaint = "今年的补贴到现在还没有发，问了村里说再等等。";
            answers.insert("other".to_owned(), Answer::Text(text(complaint)?));
            let cid = CaseId::from_uuid(Uuid::new_v4());
            let facts = CaseFacts {
                channel: Channel::Questionnaire,
                kind: CaseKind::Complaint,
                village: Some(village),
                received_at: at(15),
                campaign: tag(15),
                source: CaseSource { source_type: SourceType::Survey, record: s.id, item: id.to_string() },
            };
            cases.push(new_case(reference, cid, "耕地地力保护补贴未发放", complaint, facts).await?);
            Some(cid)
        } else {
            None
        };
        responses.push(Response { id, village, template_version: 1, answers, case });
    }
    let state = s.state.clone().ok_or("no survey")?;
    s.push(survey::record_responses(&state, responses).map_err(|(i, e)| format!("response {i}: {e}"))?)?;
    s.save(pool, &cases).await?;

    Ok(format!(
        "seeded the campaign {CAMPAIGN}: 3 meetings ({opinions} opinions as cases), 2 visits (1 undercover), \
         1 card batch (100 cards out, 1 case), 1 questionnaire (60 answers, {} complaints as cases)",
        cases.len()
    ))
}
