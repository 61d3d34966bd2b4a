//! A batch of contact cards (纠风联系卡): printed with a serial range, the committee's phone and
//! e-mail, sent to a village, handed out card by card (optionally to a named person, sealed); a
//! case registered with a card's serial is linked to it, once.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Record, RecordError, RecordIndex, record_events};
use crate::error::HistoryError;
use crate::events::SealedPersonalData;
use crate::ids::{CaseId, Name, RecordId, UnitId};

/// The most cards one batch may hold.
pub const MAX_BATCH_CARDS: u32 = 100_000;

/// `card_batch.printed` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Printed {
    /// The first serial.
    pub serial_from: u32,
    /// The last serial (included).
    pub serial_to: u32,
    /// The phone number printed on the cards (the committee's, not a citizen's).
    pub phone: Name,
    /// The e-mail address printed on the cards.
    pub email: Name,
    /// The village the batch went to.
    pub village: UnitId,
    /// The day it was delivered there.
    pub delivered_on: NaiveDate,
    /// The campaign it belongs to.
    pub campaign: Option<RecordId>,
}

/// `card_batch.handed_out` v1: cards given out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandedOut {
    /// The first serial given out.
    pub serial_from: u32,
    /// The last (included).
    pub serial_to: u32,
    /// The day.
    pub on: NaiveDate,
    /// To whom, sealed (optional).
    pub recipient: Option<SealedPersonalData>,
}

/// `card_batch.card_used` v1: a case was registered with the card; written in the same
/// transaction as the case's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardUsed {
    /// The card's serial.
    pub serial: u32,
    /// The case.
    pub case: CaseId,
}

/// `card_batch.recipient_erased` v1: the personal data of a hand-out's recipient was erased
/// (their key shredded); the sealed value in the log opens no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientErased {
    /// The hand-out, by its first serial.
    pub serial_from: u32,
}

record_events! {
    /// Every event of a contact-card batch.
    CardBatchEvent {
        Printed(Printed) => "card_batch.printed", 1;
        HandedOut(HandedOut) => "card_batch.handed_out", 1;
        CardUsed(CardUsed) => "card_batch.card_used", 1;
        RecipientErased(RecipientErased) => "card_batch.recipient_erased", 1;
    }
}

/// A batch as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardBatch {
    /// Its id.
    pub id: RecordId,
    /// How many events it has.
    pub version: u32,
    /// What was printed and where it went.
    #[serde(flatten)]
    pub details: Printed,
    /// The hand-outs, in order.
    pub handed_out: Vec<HandedOut>,
    /// The cards that brought a case.
    pub used: Vec<CardUsed>,
    /// The hand-outs (by first serial) whose recipient's personal data was erased.
    #[serde(default)]
    pub erased: Vec<u32>,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl CardBatch {
    /// Whether a serial is in the batch.
    pub fn holds(&self, serial: u32) -> bool {
        (self.details.serial_from..=self.details.serial_to).contains(&serial)
    }

    /// How many cards were handed out.
    pub fn cards_out(&self) -> u64 {
        self.handed_out.iter().map(|h| u64::from(h.serial_to - h.serial_from) + 1).sum()
    }

    /// Whether a card was handed out.
    pub fn is_handed_out(&self, serial: u32) -> bool {
        self.handed_out.iter().any(|h| (h.serial_from..=h.serial_to).contains(&serial))
    }
}

/// Checks a serial range: it runs forwards and holds at most [`MAX_BATCH_CARDS`] cards.
///
/// # Errors
/// [`RecordError::BadSerialRange`].
pub fn check_range(from: u32, to: u32) -> Result<(), RecordError> {
    if from <= to && to - from < MAX_BATCH_CARDS { Ok(()) } else { Err(RecordError::BadSerialRange) }
}

/// Records a printed batch. That no two batches overlap is the database's to check, across
/// every batch at once.
///
/// # Errors
/// [`RecordError::BadSerialRange`].
pub fn print(details: Printed) -> Result<Vec<CardBatchEvent>, RecordError> {
    check_range(details.serial_from, details.serial_to)?;
    Ok(vec![CardBatchEvent::Printed(details)])
}

/// Records cards handed out.
///
/// # Errors
/// [`RecordError::BadSerialRange`], [`RecordError::UnknownSerial`] for a serial outside the
/// batch, [`RecordError::AlreadyHandedOut`], [`RecordError::BeforeDelivery`].
pub fn hand_out(
    batch: &CardBatch,
    serial_from: u32,
    serial_to: u32,
    on: NaiveDate,
    recipient: Option<SealedPersonalData>,
) -> Result<Vec<CardBatchEvent>, RecordError> {
    check_range(serial_from, serial_to)?;
    if on < batch.details.delivered_on {
        return Err(RecordError::BeforeDelivery);
    }
    for s in [serial_from, serial_to] {
        if !batch.holds(s) {
            return Err(RecordError::UnknownSerial(s));
        }
    }
    if let Some(h) = batch.handed_out.iter().find(|h| h.serial_from <= serial_to && serial_from <= h.serial_to) {
        return Err(RecordError::AlreadyHandedOut(h.serial_from.max(serial_from)));
    }
    Ok(vec![CardBatchEvent::HandedOut(HandedOut { serial_from, serial_to, on, recipient })])
}

/// Links a card to the case registered with it, received on `received_on` (China Standard
/// Time): a card of the batch, handed out, not used before, and not before the batch was
/// delivered.
///
/// # Errors
/// [`RecordError::UnknownSerial`], [`RecordError::NotHandedOut`], [`RecordError::SerialUsed`],
/// [`RecordError::BeforeDelivery`].
pub fn use_card(
    batch: &CardBatch,
    serial: u32,
    case: CaseId,
    received_on: NaiveDate,
) -> Result<Vec<CardBatchEvent>, RecordError> {
    if !batch.holds(serial) {
        return Err(RecordError::UnknownSerial(serial));
    }
    if !batch.is_handed_out(serial) {
        return Err(RecordError::NotHandedOut(serial));
    }
    if batch.used.iter().any(|u| u.serial == serial) {
        return Err(RecordError::SerialUsed(serial));
    }
    if received_on < batch.details.delivered_on {
        return Err(RecordError::BeforeDelivery);
    }
    Ok(vec![CardBatchEvent::CardUsed(CardUsed { serial, case })])
}

/// Erases the recipient of the hand-out that holds `serial`: the event to record, and the subject
/// whose key the caller shreds first.
///
/// # Errors
/// [`RecordError::NoRecipient`] when no hand-out holds the serial, it named no one, or its
/// recipient was erased already.
pub fn erase_recipient(
    batch: &CardBatch,
    serial: u32,
) -> Result<(Vec<CardBatchEvent>, crate::ids::SubjectId), RecordError> {
    if !batch.holds(serial) {
        return Err(RecordError::UnknownSerial(serial));
    }
    let h = batch
        .handed_out
        .iter()
        .find(|h| (h.serial_from..=h.serial_to).contains(&serial))
        .filter(|h| !batch.erased.contains(&h.serial_from))
        .ok_or(RecordError::NoRecipient(serial))?;
    let sealed = h.recipient.as_ref().ok_or(RecordError::NoRecipient(serial))?;
    Ok((vec![CardBatchEvent::RecipientErased(RecipientErased { serial_from: h.serial_from })], sealed.subject))
}

impl Record for CardBatch {
    const STREAM: &'static str = "card_batch";
    type Event = CardBatchEvent;

    fn apply(
        state: Option<Self>,
        id: RecordId,
        event: &CardBatchEvent,
        at: DateTime<Utc>,
    ) -> Result<Self, HistoryError> {
        match (state, event) {
            (None, CardBatchEvent::Printed(e)) => Ok(Self {
                id,
                version: 1,
                details: e.clone(),
                handed_out: Vec::new(),
                used: Vec::new(),
                erased: Vec::new(),
                recorded_at: at,
            }),
            (Some(mut b), CardBatchEvent::HandedOut(e)) => {
                b.version += 1;
                b.handed_out.push(e.clone());
                Ok(b)
            }
            (Some(mut b), CardBatchEvent::CardUsed(e)) => {
                b.version += 1;
                b.used.push(e.clone());
                Ok(b)
            }
            (Some(mut b), CardBatchEvent::RecipientErased(e)) => {
                b.version += 1;
                b.erased.push(e.serial_from);
                Ok(b)
            }
            _ => Err(HistoryError::NotCreated(Self::STREAM)),
        }
    }

    fn case_ids(&self) -> Vec<CaseId> {
        self.used.iter().map(|u| u.case).collect()
    }

    fn index(&self) -> RecordIndex {
        RecordIndex {
            campaign: self.details.campaign,
            units: vec![self.details.village],
            restricted: false,
            happened_on: Some(self.details.delivered_on),
            serials: Some((self.details.serial_from, self.details.serial_to)),
        }
    }
}
