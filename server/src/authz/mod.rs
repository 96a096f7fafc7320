//! Authorization. The only module that talks to casbin: services ask
//! [`Authz::require`] before they read or change anything.

use std::sync::Arc;

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use tokio::sync::RwLock;

use crate::auth::Actor;
use crate::error::{AppError, AppResult};

const MODEL: &str = include_str!("model.conf");
const POLICY: &str = include_str!("policy.csv");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Account,
    Contact,
    Lead,
    Opportunity,
    Note,
    Pipeline,
    User,
    Token,
    Audit,
}

impl Resource {
    fn as_str(self) -> &'static str {
        match self {
            Resource::Account => "account",
            Resource::Contact => "contact",
            Resource::Lead => "lead",
            Resource::Opportunity => "opportunity",
            Resource::Note => "note",
            Resource::Pipeline => "pipeline",
            Resource::User => "user",
            Resource::Token => "token",
            Resource::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Delete,
    ManageOwn,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::ManageOwn => "manage_own",
        }
    }
}

#[derive(Clone)]
pub struct Authz {
    enforcer: Arc<RwLock<Enforcer>>,
}

impl Authz {
    /// Builds the enforcer from the model and role policies shipped in the binary.
    pub async fn load() -> anyhow::Result<Self> {
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await?;
        let mut policies = Vec::new();
        let mut groupings = Vec::new();
        for line in POLICY
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let mut fields: Vec<String> = line.split(',').map(|f| f.trim().to_owned()).collect();
            match fields.first().map(String::as_str) {
                Some("p") => policies.push(fields.split_off(1)),
                Some("g") => groupings.push(fields.split_off(1)),
                _ => anyhow::bail!("unrecognised policy line: {line}"),
            }
        }
        enforcer.add_policies(policies).await?;
        enforcer.add_grouping_policies(groupings).await?;
        Ok(Authz {
            enforcer: Arc::new(RwLock::new(enforcer)),
        })
    }

    pub async fn can(&self, actor: &Actor, resource: Resource, action: Action) -> bool {
        let enforcer = self.enforcer.read().await;
        match enforcer.enforce((actor.role.as_str(), resource.as_str(), action.as_str())) {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::error!(error = %e, "casbin enforce failed; denying");
                false
            }
        }
    }

    pub async fn require(
        &self,
        actor: &Actor,
        resource: Resource,
        action: Action,
    ) -> AppResult<()> {
        if self.can(actor, resource, action).await {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "your role ({}) may not {} {} records",
                actor.role.as_str(),
                action.as_str().replace('_', " "),
                resource.as_str()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accord_entities::user::Role;

    fn actor(role: Role) -> Actor {
        Actor {
            user_id: 1,
            role,
            token_id: 1,
        }
    }

    #[tokio::test]
    async fn roles_follow_the_policy_file() {
        let authz = Authz::load().await.unwrap();
        let rep = actor(Role::Rep);
        let manager = actor(Role::SalesManager);
        let admin = actor(Role::Admin);
        assert!(authz.can(&rep, Resource::Opportunity, Action::Write).await);
        assert!(!authz.can(&rep, Resource::Pipeline, Action::Write).await);
        assert!(!authz.can(&rep, Resource::Audit, Action::Read).await);
        assert!(!authz.can(&rep, Resource::User, Action::Write).await);
        // Managers inherit every rep permission and add their own.
        assert!(
            authz
                .can(&manager, Resource::Opportunity, Action::Write)
                .await
        );
        assert!(authz.can(&manager, Resource::Pipeline, Action::Write).await);
        assert!(!authz.can(&manager, Resource::User, Action::Write).await);
        assert!(authz.can(&admin, Resource::User, Action::Write).await);
        let err = authz
            .require(&rep, Resource::Pipeline, Action::Write)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "FORBIDDEN");
    }
}
