//! The working calendar (工作日历): weekends, public holidays and make-up working days (调休).
//!
//! Deadlines in China are counted in working days. A date is a working day when it is a
//! make-up working day, or when it is a Monday to Friday that is not a public holiday.
//! Dates are local dates in China Standard Time (UTC+8, no daylight saving).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// China Standard Time, UTC+8.
pub fn china_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// How far a calendar search may go before it gives up: about ten years of days.
const MAX_SCAN_DAYS: u32 = 3660;

/// Public holidays and make-up working days. Passed into the domain as a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingCalendar {
    holidays: BTreeSet<NaiveDate>,
    makeup_workdays: BTreeSet<NaiveDate>,
    /// The years whose State Council notice is loaded.
    #[serde(default)]
    years: BTreeSet<i32>,
}

impl WorkingCalendar {
    /// Builds a calendar. A date listed as both is taken as a make-up working day. A year is
    /// taken as loaded when at least one of its dates is listed (every year of China's calendar
    /// has holidays); [`WorkingCalendar::with_years`] says so explicitly.
    pub fn new(
        holidays: impl IntoIterator<Item = NaiveDate>,
        makeup_workdays: impl IntoIterator<Item = NaiveDate>,
    ) -> Self {
        let holidays: BTreeSet<NaiveDate> = holidays.into_iter().collect();
        let makeup_workdays: BTreeSet<NaiveDate> = makeup_workdays.into_iter().collect();
        let years = holidays.iter().chain(makeup_workdays.iter()).map(|d| d.year()).collect();
        Self { holidays, makeup_workdays, years }
    }

    /// The same calendar, with `years` marked as loaded too.
    pub fn with_years(mut self, years: impl IntoIterator<Item = i32>) -> Self {
        self.years.extend(years);
        self
    }

    /// Whether every year from `from` to `to` (inclusive) is loaded.
    pub fn covers(&self, from: NaiveDate, to: NaiveDate) -> bool {
        let (a, b) = if from <= to { (from.year(), to.year()) } else { (to.year(), from.year()) };
        (a..=b).all(|y| self.years.contains(&y))
    }

    /// The years loaded, in order.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.makeup_workdays.contains(&date) {
            return true;
        }
        if self.holidays.contains(&date) {
            return false;
        }
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`th working day after `date` (not counting `date` itself). `n = 0` gives `date`.
    pub fn add_working_days(&self, date: NaiveDate, n: u16) -> Result<NaiveDate, DomainError> {
        let mut d = date;
        let mut left = n;
        let mut scanned = 0;
        while left > 0 {
            d = d.succ_opt().ok_or(DomainError::CalendarExhausted)?;
            scanned += 1;
            if scanned > MAX_SCAN_DAYS {
                return Err(DomainError::CalendarExhausted);
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        Ok(d)
    }

    /// How many working days lie after `from` up to and including `to` (0 when `to <= from`).
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        let mut count = 0;
        let mut d = from;
        let mut scanned = 0;
        while d < to && scanned < MAX_SCAN_DAYS * 3 {
            match d.succ_opt() {
                Some(next) => d = next,
                None => break,
            }
            scanned += 1;
            if self.is_working_day(d) {
                count += 1;
            }
        }
        count
    }

    /// The holidays, in order.
    pub fn holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied()
    }

    /// The make-up working days, in order.
    pub fn makeup_workdays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.makeup_workdays.iter().copied()
    }
}

/// The local date of an instant in China Standard Time.
pub fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&china_offset()).date_naive()
}

/// The first instant of a local date (00:00 CST).
pub fn start_of_local_day(date: NaiveDate) -> DateTime<Utc> {
    // A fixed offset maps every local time to exactly one instant.
    (date.and_time(NaiveTime::MIN) - chrono::Duration::hours(8)).and_utc()
}

/// The last second of a local date (23:59:59 CST) as an instant: the moment a deadline that
/// falls on that day expires.
pub fn end_of_local_day(date: NaiveDate) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(23, 59, 59).expect("23:59:59 is a valid time");
    // A fixed offset maps every local time to exactly one instant.
    (date.and_time(time) - chrono::Duration::hours(8)).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn weekends_are_skipped() {
        let cal = WorkingCalendar::default();
        // Friday 2026-11-27 + 1 working day is Monday 2026-11-30.
        assert_eq!(cal.add_working_days(d(2026, 11, 27), 1), Ok(d(2026, 11, 30)));
        assert_eq!(cal.working_days_between(d(2026, 11, 27), d(2026, 11, 30)), 1);
    }

    #[test]
    fn holidays_move_and_makeup_days_count() {
        // National Day 2026: 1–7 Oct off, Sat 10 Oct worked (illustrative).
        let cal = WorkingCalendar::new((1..=7).map(|x| d(2026, 10, x)), [d(2026, 10, 10)]);
        assert_eq!(cal.add_working_days(d(2026, 9, 30), 1), Ok(d(2026, 10, 8)));
        assert_eq!(cal.add_working_days(d(2026, 10, 9), 1), Ok(d(2026, 10, 10)));
        assert!(!cal.is_working_day(d(2026, 10, 5)));
        assert!(cal.is_working_day(d(2026, 10, 10)));
    }

    #[test]
    fn a_calendar_without_working_days_is_an_error_not_a_hang() {
        let all: Vec<_> = (0..4000).filter_map(|i| d(2026, 1, 1).checked_add_days(chrono::Days::new(i))).collect();
        let cal = WorkingCalendar::new(all, []);
        assert_eq!(cal.add_working_days(d(2026, 1, 1), 1), Err(DomainError::CalendarExhausted));
    }

    #[test]
    fn end_of_day_is_in_china_time() {
        assert_eq!(end_of_local_day(d(2026, 11, 30)).to_rfc3339(), "2026-11-30T15:59:59+00:00");
    }
}
