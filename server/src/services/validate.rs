//! Parse-don't-validate helpers for service inputs. Each names the input field at fault.

use email_address::EmailAddress;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::error::{AppError, AppResult};

pub const NAME_MAX: usize = 200;
pub const SHORT_MAX: usize = 100;
pub const NOTE_MAX: usize = 20_000;

/// Micro-units per currency unit; money columns are `BIGINT` micros.
const MICROS: i64 = 1_000_000;
/// Largest accepted amount: a trillion units, far above any real deal, far below i64.
const MONEY_MAX: i64 = 1_000_000_000_000;

/// Trimmed, non-empty, at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> AppResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(AppError::validation(field, "must not be empty"));
    }
    within(field, trimmed, max)?;
    Ok(trimmed.to_owned())
}

/// Trimmed; blank becomes `None`.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => {
            within(field, v, max)?;
            Ok(Some(v.to_owned()))
        }
    }
}

fn within(field: &str, value: &str, max: usize) -> AppResult<()> {
    let chars = value.chars().count();
    if chars > max {
        return Err(AppError::validation(
            field,
            format!("must be at most {max} characters (got {chars})"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(AppError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub fn email(field: &str, value: Option<&str>) -> AppResult<Option<String>> {
    let Some(v) = optional_text(field, value, 254)? else {
        return Ok(None);
    };
    if !EmailAddress::is_valid(&v) {
        return Err(AppError::validation(
            field,
            format!("'{v}' is not a valid email address"),
        ));
    }
    Ok(Some(v.to_lowercase()))
}

pub fn required_email(field: &str, value: &str) -> AppResult<String> {
    email(field, Some(value))?.ok_or_else(|| AppError::validation(field, "must not be empty"))
}

/// ISO 4217 code, normalised to upper case.
pub fn currency(field: &str, value: &str) -> AppResult<String> {
    let code = value.trim().to_uppercase();
    if iso_currency::Currency::from_code(&code).is_none() {
        return Err(AppError::validation(
            field,
            format!("'{value}' is not an ISO 4217 currency code"),
        ));
    }
    Ok(code)
}

/// ISO 3166-1 alpha-2 shape, normalised to upper case.
pub fn country(field: &str, value: Option<&str>) -> AppResult<Option<String>> {
    let Some(v) = optional_text(field, value, 2)? else {
        return Ok(None);
    };
    let code = v.to_uppercase();
    if code.len() != 2 || !code.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(AppError::validation(
            field,
            "must be a two-letter ISO 3166-1 country code",
        ));
    }
    Ok(Some(code))
}

/// A non-negative amount with at most 6 decimal places, as micro-units.
pub fn money_micros(field: &str, amount: Decimal) -> AppResult<i64> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(AppError::validation(field, "must not be negative"));
    }
    if amount.normalize().scale() > 6 {
        return Err(AppError::validation(
            field,
            "must have at most 6 decimal places",
        ));
    }
    // Checked: a huge literal (say 1e25) would overflow the multiplication itself.
    amount
        .checked_mul(Decimal::from(MICROS))
        .and_then(|m| m.to_i64())
        .filter(|m| *m <= MONEY_MAX * MICROS)
        .ok_or_else(|| AppError::validation(field, format!("must be at most {MONEY_MAX}")))
}

pub fn micros_to_decimal(micros: i64) -> Decimal {
    Decimal::new(micros, 6).normalize()
}

pub fn percentage(field: &str, value: i32) -> AppResult<i32> {
    if !(0..=100).contains(&value) {
        return Err(AppError::validation(field, "must be between 0 and 100"));
    }
    Ok(value)
}

/// A calendar instant between 1970 and fifty years from now: the range a CRM calendar
/// has any use for, and one every backend and iCalendar client handles.
pub fn calendar_instant(field: &str, at: chrono::DateTime<chrono::Utc>) -> AppResult<()> {
    let earliest = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let latest = chrono::Utc::now() + chrono::Duration::days(365 * 50);
    if at < earliest || at > latest {
        return Err(AppError::validation(
            field,
            "must lie between 1970 and fifty years from now",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn text_rules() {
        assert_eq!(required_text("name", "  Acme ", 10).unwrap(), "Acme");
        assert_eq!(
            required_text("name", "  ", 10).unwrap_err().code(),
            "VALIDATION"
        );
        assert!(required_text("name", &"x".repeat(11), 10).is_err());
        assert!(required_text("name", "a\u{0}b", 10).is_err());
        assert_eq!(optional_text("t", Some(" "), 5).unwrap(), None);
    }

    #[test]
    fn money_is_exact_and_bounded() {
        assert_eq!(
            money_micros("amount", Decimal::from_str("12.50").unwrap()).unwrap(),
            12_500_000
        );
        assert!(money_micros("amount", Decimal::from_str("-1").unwrap()).is_err());
        assert!(money_micros("amount", Decimal::from_str("0.0000001").unwrap()).is_err());
        assert!(money_micros("amount", Decimal::from_str("1000000000001").unwrap()).is_err());
        assert!(money_micros("amount", Decimal::MAX).is_err());
        assert!(
            money_micros(
                "amount",
                Decimal::from_str("100000000000000000000000").unwrap()
            )
            .is_err()
        );
        assert_eq!(micros_to_decimal(12_500_000).to_string(), "12.5");
    }

    #[test]
    fn codes() {
        assert_eq!(currency("c", "eur").unwrap(), "EUR");
        assert!(currency("c", "XYZ1").is_err());
        assert_eq!(country("c", Some("de")).unwrap(), Some("DE".into()));
        assert!(country("c", Some("D1")).is_err());
        assert!(email("e", Some("nope")).is_err());
        assert_eq!(
            email("e", Some("A@Example.com")).unwrap(),
            Some("a@example.com".into())
        );
    }
}
