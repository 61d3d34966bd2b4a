//! `/api/v1/contact-cards/batches`: printed batches of contact cards (纠风联系卡), the cards
//! handed out, and the cases registered with a card's serial (`contact_card_serial` on
//! `POST /api/v1/cases`), each card once.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::NaiveDate;
use domain::records::card::{self, CardBatch};
use domain::records::{CaseSource, RecordError, SourceType};
use domain::{Case, Name};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::records::{RecordAsOfQuery, RecordListQuery, RecordPage, RecordView, happened_day};
use crate::auth::{Action, Principal};
use crate::dto::RegisterCaseRequest;
use crate::extract::json_body;
use crate::middleware::within_deadline;
use crate::problem::ApiError;
use crate::records::{self, Decided};
use crate::routes::cases::meta;
use crate::service::{Fields, RequestMeta};
use crate::startup::AppState;

/// Records a printed batch of contact cards.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "serial_from": 1001, "serial_to": 1500, "phone": "0571-12345678", "email": "jiufeng@example.gov.cn",
    "village_id": "00000000-0000-0000-0000-000000000002", "delivered_on": "2026-04-01"
}))]
pub struct BatchRequest {
    /// The first serial (0 to 4294967295).
    #[schema(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
    pub serial_from: u32,
    /// The last serial, included: at most 100000 cards from `serial_from`; a range that overlaps
    /// another batch's is 422 `serials-overlap`.
    #[schema(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
    pub serial_to: u32,
    /// The phone number printed on the cards (the committee's): 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub phone: String,
    /// The e-mail address printed on the cards: 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub email: String,
    /// The village the batch went to (an active village, farm or community).
    pub village_id: Uuid,
    /// The day it was delivered there, 2000-01-01 to today (China Standard Time; a later day is
    /// 422 `date-in-future`); inside the days and units of its campaign (422 `outside-campaign`).
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-04-10")]
    pub delivered_on: NaiveDate,
    /// The campaign it belongs to.
    pub campaign_id: Option<Uuid>,
}

/// The person cards were handed to: a name or a phone, or both (blank counts as absent).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    /// Full name: at most 50 characters, trimmed, no control characters.
    #[schema(max_length = 50, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", example = "张三")]
    pub name: Option<String>,
    /// Phone number, as a complainant's: 7 to 15 digits, optionally after `+86`.
    #[schema(max_length = 20, pattern = r"^[ -]*(\+[ -]*8[ -]*6)?([ -]*[0-9]){7,15}[ -]*$", example = "13812345678")]
    pub phone: Option<String>,
}

/// Records cards handed out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"serial_from": 1001, "serial_to": 1010, "on": "2026-04-02"}))]
pub struct HandOutRequest {
    /// The first serial handed out.
    #[schema(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
    pub serial_from: u32,
    /// The last (included).
    #[schema(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
    pub serial_to: u32,
    /// The day, 2000-01-01 to today (422 `date-in-future`), not before the batch's delivery
    /// (422 `before-delivery`).
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-04-10")]
    pub on: NaiveDate,
    /// To whom (optional): sealed like a complainant, shown masked, erasable.
    pub recipient: Option<RecipientInput>,
}

/// Shows each hand-out's recipient masked (`赵*`, `139****1111`), or `{"erased": true}`, in the
/// batch's record as `view` serves it; adds the counts per batch: cards out, cards used, and the
/// cases they brought by status.
async fn present(state: &AppState, b: &CardBatch, v: &mut RecordView) -> Result<(), ApiError> {
    let mut shown = Vec::with_capacity(b.handed_out.len());
    for h in &b.handed_out {
        let recipient = match &h.recipient {
            None => serde_json::Value::Null,
            Some(_) if b.erased.contains(&h.serial_from) => serde_json::json!({"erased": true}),
            Some(sealed) => match state.vault.open(&state.pool, sealed).await? {
                infra::vault::Opened::Clear(d) => serde_json::json!({
                    "name": d.name.as_deref().map(domain::personal::mask_name),
                    "phone": d.phone.as_deref().map(domain::personal::mask_phone),
                }),
                infra::vault::Opened::Erased => serde_json::json!({"erased": true}),
            },
        };
        shown.push(recipient);
    }
    let mut by_status: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for c in &v.cases {
        *by_status.entry(c.status.clone()).or_default() += 1;
    }
    if let Some(obj) = v.record.as_object_mut() {
        if let Some(outs) = obj.get_mut("handed_out").and_then(|h| h.as_array_mut()) {
            for (h, r) in outs.iter_mut().zip(shown) {
                if let Some(h) = h.as_object_mut() {
                    h.insert("recipient".into(), r);
                }
            }
        }
        obj.insert("cards_out".into(), b.cards_out().into());
        obj.insert("cards_used".into(), b.used.len().into());
        obj.insert("cases_by_status".into(), serde_json::json!(by_status));
    }
    Ok(())
}

async fn view(state: &AppState, principal: &Principal, b: &CardBatch) -> Result<RecordView, ApiError> {
    view_at(state, principal, b, None).await
}

async fn view_at(
    state: &AppState,
    principal: &Principal,
    b: &CardBatch,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<RecordView, ApiError> {
    let mut v = RecordView::at(state, principal, b.id.as_uuid(), b.version, b, Vec::new(), as_of).await?;
    present(state, b, &mut v).await?;
    Ok(v)
}

/// Registers a case brought by a contact card: the card's batch records its use in the same
/// transaction as the case (an unknown serial, or one used already, is 422).
pub async fn register_with_card(
    state: &AppState,
    meta: &RequestMeta,
    req: &RegisterCaseRequest,
    serial: u32,
    idem: Option<infra::IdempotencyKey>,
) -> Result<Case, ApiError> {
    let batch_id =
        infra::records::batch_of_serial(&state.pool, serial).await?.ok_or(RecordError::UnknownSerial(serial))?;
    let row = infra::records::get(&state.pool, batch_id).await?.ok_or(RecordError::UnknownSerial(serial))?;
    let batch: CardBatch = serde_json::from_value(row.doc).map_err(ApiError::internal)?;
    let source = CaseSource { source_type: SourceType::CardBatch, record: batch.id, item: serial.to_string() };
    let new = crate::service::prepare_case(state, meta, req, Some(source), batch.details.campaign).await?;
    let append = new.append_with_key(idem);
    // The card's use is the batch's event: a clerk writes it whatever their scope of records.
    let system = RequestMeta { idempotency_key: None, ..meta.clone() };
    let case = new.case.clone();
    records::write_unscoped::<CardBatch>(state, &system, batch_id, &(), |b| {
        let received_on = domain::records::china_day(case.received_at);
        Ok(Decided { events: card::use_card(b, serial, new.id, received_on)?, cases: vec![append.clone()] })
    })
    .await?;
    Ok(case)
}

/// Record a printed batch of contact cards
///
/// Records a batch: its serial range, the phone and e-mail printed on it, the village it went
/// to and when. No two batches' ranges overlap (422 `serials-overlap`, checked by the database
/// across every batch at once). Clerks and supervisors.
#[utoipa::path(tag = "contact-cards", request_body = BatchRequest, responses(
    (status = 201, description = "The batch", body = RecordView),
    (status = 409, description = "`campaign-finished`: the campaign's summary report is frozen; nothing more joins it", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`serials-overlap`, `bad-serial-range`, a field invalid, a village unknown", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/contact-cards/batches")]
pub async fn print_card_batch(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: BatchRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let v = within_deadline(&req, async {
        let mut f = Fields::default();
        let phone = f.take("phone", Name::parse(&body.phone));
        let email = f.take("email", Name::parse(&body.email));
        let delivered_on = happened_day("delivered_on", body.delivered_on)?;
        f.finish()?;
        card::check_range(body.serial_from, body.serial_to)?;
        let village = crate::service::check_village(&state, body.village_id).await?;
        let campaign = super::meetings::check_campaign(
            &state,
            &meta.principal,
            body.campaign_id,
            delivered_on,
            &[village],
            "the batch's delivery",
        )
        .await?;
        let (Some(phone), Some(email)) = (phone, email) else { return Err(ApiError::Validation(Vec::new())) };
        let events = card::print(card::Printed {
            serial_from: body.serial_from,
            serial_to: body.serial_to,
            phone,
            email,
            village,
            delivered_on,
            campaign,
        })?;
        let b: CardBatch =
            records::create(&state, &meta, Action::RecordActivity, &body, Decided::events(events)).await?;
        view(&state, &meta.principal, &b).await
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/contact-cards/batches/{}", v.id)))
        .json(v))
}

/// List contact-card batches
///
/// The batches the caller may read, newest first, each with cards out, cards used and the
/// cases they brought (a handler: their village's).
#[utoipa::path(tag = "contact-cards", params(RecordListQuery), responses((status = 200, description = "A page", body = RecordPage)), security(("bearer" = [])))]
#[get("/contact-cards/batches")]
pub async fn list_card_batches(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let q: RecordListQuery = crate::extract::query(&req)?;
    let mut page =
        within_deadline(&req, super::records::list::<CardBatch>(&state, &principal, &q, |_| Vec::new())).await?;
    for item in &mut page.items {
        let row = infra::records::get(&state.pool, item.id).await?;
        if let Some(b) = row.and_then(|r| serde_json::from_value::<CardBatch>(r.doc).ok()) {
            present(&state, &b, item).await?;
        }
    }
    Ok(HttpResponse::Ok().json(page))
}

/// Get a contact-card batch
///
/// The batch: its range, where it went, the cards handed out (recipients masked, or
/// `{"erased": true}`), cards out, cards used, and the cases they brought with where those stand
/// (`cases_by_status`); with `as_of`, as it stood then.
#[utoipa::path(tag = "contact-cards", params(("id" = Uuid, Path, description = "The batch"), RecordAsOfQuery), responses(
    (status = 200, description = "The batch", body = RecordView),
    (status = 404, description = "No such batch the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/contact-cards/batches/{id}")]
pub async fn get_card_batch(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let as_of = super::records::as_of(&req)?;
    let (b, _) = records::load::<CardBatch>(&state, &principal, *id, as_of).await?;
    Ok(HttpResponse::Ok().json(view_at(&state, &principal, &b, as_of).await?))
}

/// Record cards handed out
///
/// Records that the cards `serial_from`…`serial_to` of the batch were handed out, on a day,
/// optionally to a named person (sealed, shown masked). A serial outside the batch is 422
/// `unknown-serial`; a card handed out before, 422 `already-handed-out`.
#[utoipa::path(tag = "contact-cards", params(("id" = Uuid, Path, description = "The batch")), request_body = HandOutRequest, responses(
    (status = 200, description = "The batch", body = RecordView),
    (status = 404, description = "No such batch", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`unknown-serial`, `already-handed-out`, `bad-serial-range`, a field invalid", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/contact-cards/batches/{id}/handouts")]
pub async fn hand_out_cards(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: HandOutRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let b = within_deadline(&req, async {
        let on = happened_day("on", body.on)?;
        let recipient = match &body.recipient {
            Some(r) => {
                let clean = |s: &Option<String>| {
                    s.as_deref().map(str::trim).filter(|s| !domain::is_blank(s)).map(str::to_owned)
                };
                let (name, phone) = (clean(&r.name), clean(&r.phone));
                let mut f = Fields::default();
                if name.as_deref().is_some_and(|n| n.chars().count() > 50 || n.chars().any(char::is_control)) {
                    f.push("recipient.name", "must be at most 50 printable characters");
                }
                if let Some(Err(e)) = phone.as_deref().map(domain::personal::check_phone) {
                    f.push("recipient.phone", e.message);
                }
                f.finish()?;
                // Sealed only for a batch that exists (and the caller may read).
                records::load::<CardBatch>(&state, &meta.principal, *id, None).await?;
                if name.is_none() && phone.is_none() {
                    None
                } else {
                    let data = infra::vault::PersonalData { name, phone, id_number: None, email: None };
                    Some(state.vault.seal(&state.pool, &data).await?)
                }
            }
            _ => None,
        };
        records::write::<CardBatch>(&state, &meta, *id, Action::RecordActivity, &body, |b| {
            Ok(Decided::events(card::hand_out(b, body.serial_from, body.serial_to, on, recipient.clone())?))
        })
        .await
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &b).await?))
}

/// Erases a hand-out's recipient.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"serial": 1011}))]
pub struct EraseRecipientRequest {
    /// A serial of the hand-out whose recipient is erased.
    #[schema(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
    pub serial: u32,
}

/// Erase a card recipient's personal data
///
/// Shreds the key that seals the name and phone of the person a hand-out of cards went to (the
/// sealed value stays in the log and opens no more), then records the erasure in the batch's
/// history. Admins, as for a complainant. 409 `no-recipient` when the hand-out named no one or
/// was erased already.
#[utoipa::path(tag = "contact-cards", params(("id" = Uuid, Path, description = "The batch")), request_body = EraseRecipientRequest, responses(
    (status = 200, description = "The batch", body = RecordView),
    (status = 404, description = "No such batch", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`no-recipient`", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/contact-cards/batches/{id}/recipients/erase")]
pub async fn erase_recipient(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ErasePersonalData)?;
    let body: EraseRecipientRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let b = within_deadline(&req, async {
        let (batch, _) = records::load::<CardBatch>(&state, &meta.principal, *id, None).await?;
        let (_, subject) = card::erase_recipient(&batch, body.serial)?;
        state.vault.erase(&state.pool, subject).await?;
        records::write::<CardBatch>(&state, &meta, *id, Action::ErasePersonalData, &body, |b| {
            Ok(Decided::events(card::erase_recipient(b, body.serial)?.0))
        })
        .await
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &b).await?))
}

/// Registers the contact-card routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(print_card_batch)
        .service(list_card_batches)
        .service(get_card_batch)
        .service(hand_out_cards)
        .service(erase_recipient);
}
