//! What a stage script asks for. The engine only records these; the server applies them.

use serde::{Deserialize, Serialize};

/// Everything one evaluation produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Why the deal may not enter the stage; empty when it may. Only on entry.
    pub denials: Vec<String>,
    pub checklist: Vec<ChecklistItem>,
    /// Deal fields the rep should look at in this stage.
    pub key_fields: Vec<String>,
    pub actions: Vec<Action>,
}

impl Outcome {
    /// Checks an outcome against the limits the host functions enforce. The server runs
    /// this on every answer from a worker, which ran untrusted code and is not trusted
    /// either.
    pub fn check_limits(&self) -> Result<(), String> {
        use crate::engine::{MAX_OFFSET_DAYS, MAX_OUTPUTS, MAX_TEXT};
        let count =
            self.denials.len() + self.checklist.len() + self.key_fields.len() + self.actions.len();
        if count > MAX_OUTPUTS {
            return Err(format!("more than {MAX_OUTPUTS} outputs"));
        }
        let long = |t: &str| t.chars().count() > MAX_TEXT;
        let max_offset = MAX_OFFSET_DAYS * 24 * 60;
        let bad_timing = |t: &Timing| t.offset_minutes.abs() > max_offset;
        let known = crate::context::fields_of("deal").unwrap_or_default();
        let bad = self.denials.iter().any(|d| long(d))
            || self.checklist.iter().any(|i| long(&i.text))
            || self.key_fields.iter().any(|f| !known.contains(&f.as_str()))
            || self.actions.iter().any(|a| match a {
                Action::Remind {
                    timing, message, ..
                } => bad_timing(timing) || long(message),
                Action::Task { timing, title, .. } => bad_timing(timing) || long(title),
                Action::SetField { value, .. } => long(value),
                Action::RequireApproval { reason } => long(reason),
            });
        if bad {
            return Err("an output beyond the script limits".into());
        }
        Ok(())
    }

    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }

    /// One sentence naming everything that is missing.
    pub fn denial_message(&self) -> Option<String> {
        match self.denials.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(many.join("; ")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub text: String,
    /// Known for items backed by a requirement (`require`), unknown for plain advice.
    pub done: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Remind {
        to: Recipient,
        timing: Timing,
        message: String,
    },
    Task {
        assignee: Recipient,
        title: String,
        timing: Timing,
    },
    SetField {
        field: SettableField,
        value: String,
    },
    RequireApproval {
        reason: String,
    },
}

/// Who a reminder or task is for; the server resolves it to users when it applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "role", rename_all = "snake_case")]
pub enum Recipient {
    Owner,
    /// The managers of the deal's territory (or of the nearest territory above it).
    TerritoryManager,
    /// Every active user with this role.
    Role(String),
}

impl Recipient {
    pub fn parse(text: &str) -> Option<Recipient> {
        match text {
            "owner" => Some(Recipient::Owner),
            "territory_manager" => Some(Recipient::TerritoryManager),
            _ => match text.strip_prefix("role:")? {
                role @ ("admin" | "sales_manager" | "rep") => Some(Recipient::Role(role.into())),
                _ => None,
            },
        }
    }
}

/// When something is due: an offset from a moment the deal carries. Kept with the
/// reminder, so that when the moment moves (a new expected close date, a new activity)
/// the reminder moves with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    pub anchor: Anchor,
    pub offset_minutes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The transition itself.
    Transition,
    /// The deal's expected close date (09:00 UTC that day).
    ExpectedCloseDate,
    /// The deal's last activity, or its entry into the stage if there was none since.
    LastActivity,
}

impl Anchor {
    pub fn as_str(self) -> &'static str {
        match self {
            Anchor::Transition => "transition",
            Anchor::ExpectedCloseDate => "expected_close_date",
            Anchor::LastActivity => "last_activity",
        }
    }

    pub fn parse(text: &str) -> Option<Anchor> {
        match text {
            "transition" => Some(Anchor::Transition),
            "expected_close_date" => Some(Anchor::ExpectedCloseDate),
            "last_activity" => Some(Anchor::LastActivity),
            _ => None,
        }
    }
}

/// The deal fields a script may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettableField {
    Grade,
    Source,
    ExpectedCloseDate,
}

impl SettableField {
    pub const ALL: [SettableField; 3] = [
        SettableField::Grade,
        SettableField::Source,
        SettableField::ExpectedCloseDate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettableField::Grade => "grade",
            SettableField::Source => "source",
            SettableField::ExpectedCloseDate => "expected_close_date",
        }
    }

    pub fn parse(text: &str) -> Option<SettableField> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }
}
