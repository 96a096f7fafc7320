//! Opaque global IDs: base64url of `Kind:number`. Clients treat them as strings; the kind
//! prefix lets `node(id:)` refetch anything and catches IDs passed to the wrong field.

use async_graphql::ID;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    User,
    ApiToken,
    Account,
    Contact,
    Lead,
    Pipeline,
    Stage,
    Opportunity,
    ContactRole,
    StageTransition,
    Note,
    AuditEntry,
    Territory,
    TerritoryMembership,
    AssignmentRule,
    StageScript,
    Reminder,
    Task,
    Webhook,
    Event,
    ContactInfluence,
    ContactRelationship,
}

impl NodeKind {
    const ALL: [NodeKind; 22] = [
        NodeKind::User,
        NodeKind::ApiToken,
        NodeKind::Account,
        NodeKind::Contact,
        NodeKind::Lead,
        NodeKind::Pipeline,
        NodeKind::Stage,
        NodeKind::Opportunity,
        NodeKind::ContactRole,
        NodeKind::StageTransition,
        NodeKind::Note,
        NodeKind::AuditEntry,
        NodeKind::Territory,
        NodeKind::TerritoryMembership,
        NodeKind::AssignmentRule,
        NodeKind::StageScript,
        NodeKind::Reminder,
        NodeKind::Task,
        NodeKind::Webhook,
        NodeKind::Event,
        NodeKind::ContactInfluence,
        NodeKind::ContactRelationship,
    ];

    /// The GraphQL type name, also used as the audit log's entity type.
    pub fn type_name(self) -> &'static str {
        match self {
            NodeKind::User => "User",
            NodeKind::ApiToken => "ApiToken",
            NodeKind::Account => "Account",
            NodeKind::Contact => "Contact",
            NodeKind::Lead => "Lead",
            NodeKind::Pipeline => "Pipeline",
            NodeKind::Stage => "Stage",
            NodeKind::Opportunity => "Opportunity",
            NodeKind::ContactRole => "OpportunityContactRole",
            NodeKind::StageTransition => "StageTransition",
            NodeKind::Note => "Note",
            NodeKind::AuditEntry => "AuditEntry",
            NodeKind::Territory => "Territory",
            NodeKind::TerritoryMembership => "TerritoryMembership",
            NodeKind::AssignmentRule => "AssignmentRule",
            NodeKind::StageScript => "StageScript",
            NodeKind::Reminder => "Reminder",
            NodeKind::Task => "Task",
            NodeKind::Webhook => "Webhook",
            NodeKind::Event => "Event",
            NodeKind::ContactInfluence => "ContactInfluence",
            NodeKind::ContactRelationship => "ContactRelationship",
        }
    }
}

pub fn encode(kind: NodeKind, id: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.type_name())))
}

/// Encodes the ID of a record whose kind is known only by its type name (audit entries).
pub fn encode_named(type_name: &str, id: i64) -> Option<ID> {
    NodeKind::ALL
        .into_iter()
        .find(|k| k.type_name() == type_name)
        .map(|k| encode(k, id))
}

/// Decodes any global ID into its kind and number.
pub fn decode_any(field: &str, id: &ID) -> AppResult<(NodeKind, i64)> {
    let malformed = || AppError::validation(field, format!("'{}' is not a valid ID", truncate(id)));
    if id.len() > 64 {
        return Err(malformed());
    }
    let raw = URL_SAFE_NO_PAD
        .decode(id.as_bytes())
        .map_err(|_| malformed())?;
    let text = String::from_utf8(raw).map_err(|_| malformed())?;
    let (kind, number) = text.split_once(':').ok_or_else(malformed)?;
    let kind = NodeKind::ALL
        .into_iter()
        .find(|k| k.type_name() == kind)
        .ok_or_else(malformed)?;
    let number: i64 = number.parse().map_err(|_| malformed())?;
    if number <= 0 {
        return Err(malformed());
    }
    Ok((kind, number))
}

/// Decodes an ID that must name a record of `kind`.
pub fn decode(field: &str, id: &ID, kind: NodeKind) -> AppResult<i64> {
    let (found, number) = decode_any(field, id)?;
    if found != kind {
        return Err(AppError::validation(
            field,
            format!(
                "expected an ID of a {}, got one of a {}",
                kind.type_name(),
                found.type_name()
            ),
        ));
    }
    Ok(number)
}

pub fn decode_opt(field: &str, id: Option<&ID>, kind: NodeKind) -> AppResult<Option<i64>> {
    id.map(|id| decode(field, id, kind)).transpose()
}

fn truncate(id: &ID) -> String {
    id.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_kind_check() {
        let id = encode(NodeKind::Account, 42);
        assert_eq!(decode("id", &id, NodeKind::Account).unwrap(), 42);
        assert_eq!(
            decode("id", &id, NodeKind::Contact).unwrap_err().code(),
            "VALIDATION"
        );
    }

    #[test]
    fn garbage_is_a_validation_error() {
        for bad in ["", "!!!", "QWNjb3VudDp4", "QWNjb3VudDotMQ", "Tm9wZTox"] {
            let err = decode_any("id", &ID(bad.into())).unwrap_err();
            assert_eq!(err.code(), "VALIDATION", "{bad}");
        }
    }
}
