//! Stage scripts through GraphQL: versions, validate, dry-run, replay, publish, archive;
//! and what scripts left on a deal (guidance, reminders, tasks).

use accord_entities::stage_script::{self, ScriptStatus as ScriptStatusModel};
use accord_workflows::{Action, Diagnostic, Event, Outcome, Recipient};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::ids::{NodeKind, decode, encode};
use crate::graphql::types::{Stage, User};
use crate::graphql::{actor, services};
use crate::services::stage_script_replay::{
    self, ReplayReport as ReplayModel, ReplayTally as TallyModel,
};
use crate::services::stage_scripts;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ScriptStatus {
    Draft,
    Published,
    Archived,
}

impl From<ScriptStatusModel> for ScriptStatus {
    fn from(s: ScriptStatusModel) -> Self {
        match s {
            ScriptStatusModel::Draft => ScriptStatus::Draft,
            ScriptStatusModel::Published => ScriptStatus::Published,
            ScriptStatusModel::Archived => ScriptStatus::Archived,
        }
    }
}

/// One version of a stage's script.
pub struct StageScript(pub stage_script::Model);

#[Object]
impl StageScript {
    async fn id(&self) -> ID {
        encode(NodeKind::StageScript, self.0.id)
    }
    /// 1, 2, 3 ... per stage.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn status(&self) -> ScriptStatus {
        self.0.status.into()
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(author) = self.0.author_id else {
            return Ok(None);
        };
        Ok(
            crate::graphql::loaders::one(&crate::graphql::loaders(ctx)?.users, author)
                .await?
                .map(User::from),
        )
    }
    async fn stage(&self, ctx: &Context<'_>) -> async_graphql::Result<Stage> {
        Ok(Stage::from(
            crate::services::pipelines::get_stage(services(ctx), actor(ctx)?, self.0.stage_id)
                .await?,
        ))
    }
}

/// A problem in a script, at a 1-based line and column (0 when it has no position, as
/// for a broken limit).
#[derive(SimpleObject)]
pub struct ScriptProblem {
    pub message: String,
    pub line: i32,
    pub column: i32,
}

impl From<Diagnostic> for ScriptProblem {
    fn from(d: Diagnostic) -> Self {
        ScriptProblem {
            message: d.message,
            line: i32::try_from(d.line).unwrap_or(i32::MAX),
            column: i32::try_from(d.column).unwrap_or(i32::MAX),
        }
    }
}

fn problems(list: Vec<Diagnostic>) -> Vec<ScriptProblem> {
    list.into_iter().map(Into::into).collect()
}

#[derive(SimpleObject)]
pub struct ChecklistItem {
    pub text: String,
    /// Known for items backed by a requirement, null for plain advice.
    pub done: Option<bool>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ScriptActionKind {
    Remind,
    Task,
    SetField,
    RequireApproval,
}

/// Something a script asks the server to do.
#[derive(SimpleObject)]
pub struct ScriptAction {
    pub kind: ScriptActionKind,
    /// `owner`, `territory_manager` or `role:<role>` (reminders and tasks).
    pub to: Option<String>,
    /// What the due time hangs on: `transition`, `expected_close_date`, `last_activity`.
    pub anchor: Option<String>,
    pub offset_minutes: Option<i64>,
    /// The reminder's message, the task's title, or the approval's reason.
    pub text: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
}

fn recipient(r: &Recipient) -> String {
    match r {
        Recipient::Owner => "owner".into(),
        Recipient::TerritoryManager => "territory_manager".into(),
        Recipient::Role(role) => format!("role:{role}"),
    }
}

impl From<&Action> for ScriptAction {
    fn from(a: &Action) -> Self {
        let empty = ScriptAction {
            kind: ScriptActionKind::Remind,
            to: None,
            anchor: None,
            offset_minutes: None,
            text: None,
            field: None,
            value: None,
        };
        match a {
            Action::Remind {
                to,
                timing,
                message,
            } => ScriptAction {
                to: Some(recipient(to)),
                anchor: Some(timing.anchor.as_str().into()),
                offset_minutes: Some(timing.offset_minutes),
                text: Some(message.clone()),
                ..empty
            },
            Action::Task {
                assignee,
                title,
                timing,
            } => ScriptAction {
                kind: ScriptActionKind::Task,
                to: Some(recipient(assignee)),
                anchor: Some(timing.anchor.as_str().into()),
                offset_minutes: Some(timing.offset_minutes),
                text: Some(title.clone()),
                ..empty
            },
            Action::SetField { field, value } => ScriptAction {
                kind: ScriptActionKind::SetField,
                field: Some(field.as_str().into()),
                value: Some(value.clone()),
                ..empty
            },
            Action::RequireApproval { reason } => ScriptAction {
                kind: ScriptActionKind::RequireApproval,
                text: Some(reason.clone()),
                ..empty
            },
        }
    }
}

/// What a script decided: the guard, the guidance, the actions.
#[derive(SimpleObject)]
pub struct ScriptOutcome {
    /// False when the entry guard refuses the deal.
    pub allowed: bool,
    pub denials: Vec<String>,
    pub checklist: Vec<ChecklistItem>,
    pub key_fields: Vec<String>,
    pub actions: Vec<ScriptAction>,
}

impl From<Outcome> for ScriptOutcome {
    fn from(o: Outcome) -> Self {
        ScriptOutcome {
            allowed: o.allowed(),
            actions: o.actions.iter().map(Into::into).collect(),
            checklist: o
                .checklist
                .into_iter()
                .map(|i| ChecklistItem {
                    text: i.text,
                    done: i.done,
                })
                .collect(),
            denials: o.denials,
            key_fields: o.key_fields,
        }
    }
}

/// A script run: its outcome, or the problems that stopped it.
#[derive(SimpleObject)]
pub struct ScriptRun {
    pub outcome: Option<ScriptOutcome>,
    pub problems: Vec<ScriptProblem>,
}

impl From<Result<Outcome, Vec<Diagnostic>>> for ScriptRun {
    fn from(r: Result<Outcome, Vec<Diagnostic>>) -> Self {
        match r {
            Ok(outcome) => ScriptRun {
                outcome: Some(outcome.into()),
                problems: Vec::new(),
            },
            Err(list) => ScriptRun {
                outcome: None,
                problems: problems(list),
            },
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ScriptEvent {
    /// The deal enters the stage: guard and entry actions.
    Enter,
    /// The deal leaves the stage: exit actions.
    Exit,
    /// A rep looks at the deal in the stage: checklist and key fields.
    Guidance,
}

impl From<ScriptEvent> for Event {
    fn from(e: ScriptEvent) -> Self {
        match e {
            ScriptEvent::Enter => Event::Enter,
            ScriptEvent::Exit => Event::Exit,
            ScriptEvent::Guidance => Event::Guidance,
        }
    }
}

#[derive(SimpleObject)]
pub struct ReplayTally {
    /// Transitions the version's guard would have refused.
    pub blocked: u64,
    pub reminders: u64,
    pub tasks: u64,
    pub approvals: u64,
    /// Transitions where the script failed (an error or a limit).
    pub failures: u64,
}

impl From<TallyModel> for ReplayTally {
    fn from(t: TallyModel) -> Self {
        ReplayTally {
            blocked: t.blocked,
            reminders: t.reminders,
            tasks: t.tasks,
            approvals: t.approvals,
            failures: t.failures,
        }
    }
}

#[derive(SimpleObject)]
pub struct ReplayDifference {
    pub transition: ID,
    pub opportunity: ID,
    pub at: DateTime<Utc>,
    /// Why the replayed version would have blocked it (null: it would not have).
    pub replayed: Option<String>,
    /// Why the published version would have blocked it (null: it would not have).
    pub published: Option<String>,
}

#[derive(SimpleObject)]
pub struct ReplayReport {
    /// Transitions into the stage in the period, among deals the caller may read.
    pub transitions: u64,
    pub replayed: ReplayTally,
    /// The published version on the same history (null when none, or when the replayed
    /// version is the published one).
    pub published: Option<ReplayTally>,
    pub published_version: Option<i32>,
    /// Transitions the two versions decide differently.
    pub differing: u64,
    /// The first of them.
    pub differences: Vec<ReplayDifference>,
    /// The period held more transitions than one replay reads (100,000).
    pub truncated: bool,
}

impl From<ReplayModel> for ReplayReport {
    fn from(r: ReplayModel) -> Self {
        ReplayReport {
            transitions: r.transitions,
            replayed: r.draft.into(),
            published: r.active.map(Into::into),
            published_version: r.active_version,
            differing: r.differing,
            differences: r
                .differences
                .into_iter()
                .map(|d| ReplayDifference {
                    transition: encode(NodeKind::StageTransition, d.transition_id),
                    opportunity: encode(NodeKind::Opportunity, d.opportunity_id),
                    at: d.at,
                    replayed: d.draft,
                    published: d.active,
                })
                .collect(),
            truncated: r.truncated,
        }
    }
}

#[derive(InputObject)]
pub struct SaveStageScriptInput {
    pub stage_id: ID,
    pub source: String,
    /// What changed, for the version history.
    pub note: Option<String>,
}

#[derive(SimpleObject)]
pub struct SaveStageScriptPayload {
    pub script: StageScript,
    /// Problems found (a draft may have them; publishing it is refused until fixed).
    pub problems: Vec<ScriptProblem>,
}

#[derive(SimpleObject)]
pub struct StageScriptPayload {
    pub script: StageScript,
}

#[derive(Default)]
pub struct StageScriptQuery;

#[Object]
impl StageScriptQuery {
    /// Every version of a stage's script, newest first.
    async fn stage_scripts(
        &self,
        ctx: &Context<'_>,
        stage_id: ID,
    ) -> async_graphql::Result<Vec<StageScript>> {
        let stage_id = decode("stageId", &stage_id, NodeKind::Stage)?;
        Ok(
            stage_scripts::versions(services(ctx), actor(ctx)?, stage_id)
                .await?
                .into_iter()
                .map(StageScript)
                .collect(),
        )
    }

    async fn stage_script(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<StageScript> {
        let id = decode("id", &id, NodeKind::StageScript)?;
        Ok(StageScript(
            stage_scripts::get(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Checks a script without saving it: syntax (with line and column), limits, and
    /// every field it names, then runs it against sample deals.
    // Runs scripts in the sandbox: costed so that one request cannot queue many.
    #[graphql(complexity = 5000)]
    async fn validate_stage_script(
        &self,
        ctx: &Context<'_>,
        source: String,
    ) -> async_graphql::Result<Vec<ScriptProblem>> {
        let svc = services(ctx);
        Ok(problems(
            stage_scripts::validate(svc, actor(ctx)?, &source).await?,
        ))
    }

    /// Runs a version against one deal with no side effects.
    // Runs scripts in the sandbox: costed so that one request cannot queue many.
    #[graphql(complexity = 5000)]
    async fn dry_run_stage_script(
        &self,
        ctx: &Context<'_>,
        script_id: ID,
        opportunity_id: ID,
        #[graphql(default_with = "ScriptEvent::Enter")] event: ScriptEvent,
    ) -> async_graphql::Result<ScriptRun> {
        let script_id = decode("scriptId", &script_id, NodeKind::StageScript)?;
        let opportunity_id = decode("opportunityId", &opportunity_id, NodeKind::Opportunity)?;
        Ok(stage_scripts::dry_run(
            services(ctx),
            actor(ctx)?,
            script_id,
            opportunity_id,
            event.into(),
        )
        .await?
        .into())
    }

    /// Replays a version against the recorded transitions into its stage in
    /// `[from, to)`, side by side with the published version.
    // Runs scripts in the sandbox: costed so that one request cannot queue many.
    #[graphql(complexity = 5000)]
    async fn replay_stage_script(
        &self,
        ctx: &Context<'_>,
        script_id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<ReplayReport> {
        let script_id = decode("scriptId", &script_id, NodeKind::StageScript)?;
        Ok(
            stage_script_replay::replay(services(ctx), actor(ctx)?, script_id, from, to)
                .await?
                .into(),
        )
    }
}

#[derive(Default)]
pub struct StageScriptMutation;

#[Object]
impl StageScriptMutation {
    /// Saves a new draft version (versions are never edited in place).
    async fn save_stage_script_draft(
        &self,
        ctx: &Context<'_>,
        input: SaveStageScriptInput,
    ) -> async_graphql::Result<SaveStageScriptPayload> {
        let stage_id = decode("stageId", &input.stage_id, NodeKind::Stage)?;
        let (script, found) = stage_scripts::save_draft(
            services(ctx),
            actor(ctx)?,
            stage_id,
            input.source,
            input.note,
        )
        .await?;
        Ok(SaveStageScriptPayload {
            script: StageScript(script),
            problems: problems(found),
        })
    }

    /// Makes a version the one that runs; publishing an older version rolls back.
    async fn publish_stage_script(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<StageScriptPayload> {
        let id = decode("id", &id, NodeKind::StageScript)?;
        Ok(StageScriptPayload {
            script: StageScript(stage_scripts::publish(services(ctx), actor(ctx)?, id).await?),
        })
    }

    /// Archives a version; archiving the published one leaves the stage unscripted.
    async fn archive_stage_script(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<StageScriptPayload> {
        let id = decode("id", &id, NodeKind::StageScript)?;
        Ok(StageScriptPayload {
            script: StageScript(stage_scripts::archive(services(ctx), actor(ctx)?, id).await?),
        })
    }
}
