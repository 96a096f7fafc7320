//! Recurring events: validating an RFC 5545 RRULE against its first occurrence and
//! expanding a series over a range. Pure (no database, no clock): the calendar service
//! decides what to ask for, this module does the date arithmetic.
//!
//! Expansion happens in the event's own time zone, so a weekly 09:00 meeting in
//! `Europe/Berlin` stays at 09:00 local time when Berlin changes between CET and CEST
//! (its UTC instant moves by an hour). The `rrule` crate does the iteration; its loop
//! limit stops rules that never match from spinning.

use chrono::{DateTime, Duration, Utc};
use rrule::{Frequency, RRule, RRuleSet, Unvalidated};

/// The most occurrences one expansion returns; callers turn "more" into an error
/// asking for a shorter range rather than silently cutting a calendar short.
pub const MAX_EXPANSION: u16 = 5000;
/// Series with more occurrences than this are treated as open-ended when storing
/// where they end (only an index hint, so nothing is lost).
const END_PROBE: u16 = 2000;

/// One occurrence of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A stored or proposed series.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub time_zone: chrono_tz::Tz,
    pub rrule: Option<&'a str>,
    pub exdates: &'a [DateTime<Utc>],
}

/// Why a series cannot be stored or expanded; the message is meant for users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrenceError {
    pub field: &'static str,
    pub message: String,
}

fn error(field: &'static str, message: impl Into<String>) -> RecurrenceError {
    RecurrenceError {
        field,
        message: message.into(),
    }
}

/// An IANA time-zone name (`America/New_York`), or a clear error.
pub fn parse_time_zone(name: &str) -> Result<chrono_tz::Tz, RecurrenceError> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        error(
            "timeZone",
            format!("unknown time zone '{name}'; use an IANA name such as Europe/Berlin"),
        )
    })
}

/// Parses a rule (with or without the `RRULE:` prefix) and returns it in canonical
/// form. Sub-hourly and hourly rules are refused: a CRM calendar has no use for them,
/// and they are the cheap way to make every expansion expensive.
pub fn normalize_rule(text: &str) -> Result<String, RecurrenceError> {
    let text = text.trim();
    let body = text
        .strip_prefix("RRULE:")
        .or_else(|| text.strip_prefix("rrule:"))
        .unwrap_or(text);
    if body.is_empty() || body.contains(['\n', '\r', ':']) {
        return Err(error(
            "rrule",
            "give one RRULE value, such as FREQ=WEEKLY;BYDAY=MO,WE",
        ));
    }
    let rule: RRule<Unvalidated> = body
        .parse()
        .map_err(|e: rrule::RRuleError| error("rrule", format!("invalid RRULE: {e}")))?;
    match rule.get_freq() {
        Frequency::Yearly | Frequency::Monthly | Frequency::Weekly | Frequency::Daily => {}
        _ => {
            return Err(error(
                "rrule",
                "events repeat at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)",
            ));
        }
    }
    if !rule.get_by_hour().is_empty()
        || !rule.get_by_minute().is_empty()
        || !rule.get_by_second().is_empty()
    {
        return Err(error(
            "rrule",
            "BYHOUR, BYMINUTE and BYSECOND are not supported; an occurrence starts at the event's start time",
        ));
    }
    Ok(rule.to_string().trim_start_matches("RRULE:").to_owned())
}

fn rule_set(series: &Series<'_>, rule: &str) -> Result<RRuleSet, RecurrenceError> {
    let tz = rrule::Tz::Tz(series.time_zone);
    let start = series.starts_at.with_timezone(&tz);
    let rule: RRule<Unvalidated> = rule
        .parse()
        .map_err(|e: rrule::RRuleError| error("rrule", format!("invalid RRULE: {e}")))?;
    let set = rule
        .build(start)
        .map_err(|e| error("rrule", format!("invalid RRULE: {e}")))?;
    Ok(set.set_exdates(
        series
            .exdates
            .iter()
            .map(|d| d.with_timezone(&tz))
            .collect(),
    ))
}

impl Series<'_> {
    fn duration(&self) -> Duration {
        self.ends_at - self.starts_at
    }

    /// Checks a series before it is stored: the rule expands from the first start,
    /// produces at least one occurrence, and every exdate names an occurrence. Returns
    /// when the last occurrence ends (`None` for open-ended series).
    pub fn validate(&self) -> Result<Option<DateTime<Utc>>, RecurrenceError> {
        if self.ends_at <= self.starts_at {
            return Err(error("endsAt", "an event must end after it starts"));
        }
        let Some(rule) = self.rrule else {
            if !self.exdates.is_empty() {
                return Err(error("exdates", "only a recurring event has exdates"));
            }
            return Ok(Some(self.ends_at));
        };
        let set = rule_set(self, rule)?;
        let probe = set.all(END_PROBE);
        if probe.dates.is_empty() {
            return Err(error(
                "rrule",
                "the rule (with its exdates) produces no occurrence",
            ));
        }
        let open_ended = {
            let parsed: RRule<Unvalidated> = rule
                .parse()
                .map_err(|e: rrule::RRuleError| error("rrule", format!("invalid RRULE: {e}")))?;
            parsed.get_count().is_none() && parsed.get_until().is_none()
        };
        let unexcluded = Series {
            exdates: &[],
            ..self.clone()
        };
        for (i, exdate) in self.exdates.iter().enumerate() {
            let hits = unexcluded.occurrences(*exdate, *exdate + Duration::seconds(1))?;
            if !hits.iter().any(|o| o.starts_at == *exdate) {
                return Err(error(
                    "exdates",
                    format!("exdates[{i}] ({exdate}) is not the start of an occurrence"),
                ));
            }
        }
        if open_ended || probe.limited {
            return Ok(None);
        }
        Ok(probe
            .dates
            .last()
            .map(|last| last.with_timezone(&Utc) + self.duration()))
    }

    /// The occurrences that overlap `[from, to)`, in order. More than [`MAX_EXPANSION`]
    /// is an error: the caller asked for too long a range.
    pub fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Occurrence>, RecurrenceError> {
        let duration = self.duration();
        let Some(rule) = self.rrule else {
            return Ok(if self.starts_at < to && self.ends_at > from {
                vec![Occurrence {
                    starts_at: self.starts_at,
                    ends_at: self.ends_at,
                }]
            } else {
                vec![]
            });
        };
        if self.starts_at >= to {
            return Ok(vec![]);
        }
        let tz = rrule::Tz::Tz(self.time_zone);
        // An occurrence that started before `from` may still be running into it.
        let earliest = (from - duration).with_timezone(&tz);
        let latest = to.with_timezone(&tz);
        let set = rule_set(self, rule)?.after(earliest).before(latest);
        let result = set.all(MAX_EXPANSION);
        if result.limited && result.dates.len() >= usize::from(MAX_EXPANSION) {
            return Err(error(
                "range",
                format!(
                    "the range holds more than {MAX_EXPANSION} occurrences of one event; ask for a shorter range"
                ),
            ));
        }
        Ok(result
            .dates
            .into_iter()
            .map(|d| d.with_timezone(&Utc))
            .map(|starts_at| Occurrence {
                starts_at,
                ends_at: starts_at + duration,
            })
            .filter(|o| o.starts_at < to && o.ends_at > from)
            .collect())
    }
}

/// Merges intervals into the disjoint, sorted busy blocks of free/busy.
pub fn merge_busy(mut intervals: Vec<Occurrence>) -> Vec<Occurrence> {
    intervals.sort_by_key(|o| (o.starts_at, o.ends_at));
    let mut merged: Vec<Occurrence> = Vec::with_capacity(intervals.len());
    for next in intervals {
        match merged.last_mut() {
            Some(last) if next.starts_at <= last.ends_at => {
                last.ends_at = last.ends_at.max(next.ends_at);
            }
            _ => merged.push(next),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap()
    }

    fn weekly_berlin(exdates: &[DateTime<Utc>]) -> Series<'_> {
        // Mondays 09:00-09:30 Berlin, starting 2026-03-16 (CET, UTC+1).
        Series {
            starts_at: utc(2026, 3, 16, 8, 0),
            ends_at: utc(2026, 3, 16, 8, 30),
            time_zone: parse_time_zone("Europe/Berlin").unwrap(),
            rrule: Some("FREQ=WEEKLY;BYDAY=MO;COUNT=4"),
            exdates,
        }
    }

    #[test]
    fn keeps_local_time_across_daylight_saving() {
        let s = weekly_berlin(&[]);
        let all = s
            .occurrences(utc(2026, 3, 1, 0, 0), utc(2026, 5, 1, 0, 0))
            .unwrap();
        let starts: Vec<_> = all.iter().map(|o| o.starts_at).collect();
        // Berlin moves to CEST (UTC+2) on 2026-03-29: 09:00 local is 07:00 UTC after.
        assert_eq!(
            starts,
            vec![
                utc(2026, 3, 16, 8, 0),
                utc(2026, 3, 23, 8, 0),
                utc(2026, 3, 30, 7, 0),
                utc(2026, 4, 6, 7, 0),
            ]
        );
        assert!(
            all.iter()
                .all(|o| o.ends_at - o.starts_at == Duration::minutes(30))
        );
        assert_eq!(s.validate().unwrap(), Some(utc(2026, 4, 6, 7, 30)));
    }

    #[test]
    fn exdates_drop_occurrences_and_must_name_one() {
        let ex = [utc(2026, 3, 30, 7, 0)];
        let s = weekly_berlin(&ex);
        s.validate().unwrap();
        let all = s
            .occurrences(utc(2026, 3, 1, 0, 0), utc(2026, 5, 1, 0, 0))
            .unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|o| o.starts_at != ex[0]));
        // 08:00 UTC on the 30th was 09:00 only before the change: not an occurrence.
        let wrong = [utc(2026, 3, 30, 8, 0)];
        assert_eq!(
            weekly_berlin(&wrong).validate().unwrap_err().field,
            "exdates"
        );
    }

    #[test]
    fn range_overlap_includes_running_occurrence() {
        let s = weekly_berlin(&[]);
        let hits = s
            .occurrences(utc(2026, 3, 16, 8, 15), utc(2026, 3, 16, 8, 20))
            .unwrap();
        assert_eq!(hits.len(), 1);
        let none = s
            .occurrences(utc(2026, 3, 16, 8, 30), utc(2026, 3, 23, 8, 0))
            .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn refuses_bad_rules() {
        for bad in [
            "FREQ=SOMETIMES",
            "FREQ=MINUTELY",
            "FREQ=HOURLY;COUNT=3",
            "FREQ=DAILY;BYHOUR=9,10",
            "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
            "",
        ] {
            assert_eq!(normalize_rule(bad).unwrap_err().field, "rrule", "{bad}");
        }
        assert_eq!(
            normalize_rule("RRULE:FREQ=WEEKLY;BYDAY=MO").unwrap(),
            "FREQ=WEEKLY;BYDAY=MO"
        );
        assert_eq!(
            parse_time_zone("Mars/Olympus").unwrap_err().field,
            "timeZone"
        );
    }

    #[test]
    fn a_rule_that_never_matches_is_refused() {
        let s = Series {
            rrule: Some("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"),
            ..weekly_berlin(&[])
        };
        assert_eq!(s.validate().unwrap_err().field, "rrule");
    }

    #[test]
    fn too_many_occurrences_is_an_error_not_a_truncation() {
        let s = Series {
            rrule: Some("FREQ=DAILY"),
            ..weekly_berlin(&[])
        };
        assert_eq!(s.validate().unwrap(), None);
        let err = s
            .occurrences(utc(2026, 3, 1, 0, 0), utc(2046, 3, 1, 0, 0))
            .unwrap_err();
        assert_eq!(err.field, "range");
        assert_eq!(
            s.occurrences(utc(2026, 3, 1, 0, 0), utc(2026, 4, 1, 0, 0))
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn merges_busy_blocks() {
        let o = |a: u32, b: u32| Occurrence {
            starts_at: utc(2026, 1, 1, a, 0),
            ends_at: utc(2026, 1, 1, b, 0),
        };
        assert_eq!(
            merge_busy(vec![o(13, 14), o(9, 10), o(9, 11), o(11, 12)]),
            vec![o(9, 12), o(13, 14)]
        );
    }
}
