//! Compiling, checking and evaluating stage scripts.
//!
//! Nothing here limits time or memory: in a binary that links casbin, Rhai's own limits
//! are compiled out (see DESIGN.md). The server therefore runs this code only inside a
//! sandboxed worker process; what this module adds is everything that can be refused
//! before a script runs (size, nesting, unknown fields, forbidden constructs) and caps on
//! what a running script may ask for.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use rhai::{AST, ASTNode, Dynamic, Engine, EvalAltResult, Expr, Map, Position, Scope};

use crate::context::{Event, KEY_ROLES, StageContext, fields_of};
use crate::outcome::{Action, Anchor, ChecklistItem, Outcome, Recipient, SettableField, Timing};
use rust_decimal::Decimal;

/// Largest script accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;
/// Deepest nesting of brackets accepted (parsing recurses once per level).
pub const MAX_NESTING: usize = 32;
/// Longest string literal accepted, in characters.
pub const MAX_STRING_LITERAL: usize = 1_000;
/// Longest message, checklist item or task title a script may produce, in characters.
pub const MAX_TEXT: usize = 500;
/// Most actions, checklist items and denials one evaluation may produce, together.
pub const MAX_OUTPUTS: usize = 50;
/// Largest offset of a timing, in days (about ten years either way).
pub const MAX_OFFSET_DAYS: i64 = 3_650;

/// A problem with a script, at a 1-based position (0 when it has none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct Diagnostic {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl Diagnostic {
    fn at(message: impl Into<String>, position: Position) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            line: position.line().unwrap_or(0),
            column: position.position().unwrap_or(0),
        }
    }

    fn nowhere(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            line: 0,
            column: 0,
        }
    }
}

/// A script that passed every check, ready to evaluate.
pub struct CompiledScript {
    ast: AST,
}

/// Compiles and evaluates scripts. One per worker: it holds the host functions, which
/// write into the outputs of the evaluation in progress.
pub struct ScriptEngine {
    engine: Engine,
    outputs: Arc<Mutex<Outputs>>,
}

/// What the host functions collected so far in the current evaluation.
#[derive(Default)]
struct Outputs {
    event: Option<Event>,
    /// The contact-role kinds on the deal, for `has_role`.
    roles: Vec<String>,
    outcome: Outcome,
}

impl Outputs {
    fn count(&self) -> usize {
        self.outcome.denials.len()
            + self.outcome.checklist.len()
            + self.outcome.key_fields.len()
            + self.outcome.actions.len()
    }
}

type HostResult<T> = Result<T, Box<EvalAltResult>>;

fn refuse<T>(message: impl Into<String>) -> HostResult<T> {
    Err(message.into().into())
}

fn text(what: &str, value: &str) -> HostResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return refuse(format!("{what} must not be empty"));
    }
    if trimmed.chars().count() > MAX_TEXT {
        return refuse(format!(
            "text limit: {what} is longer than {MAX_TEXT} characters"
        ));
    }
    Ok(trimmed.to_owned())
}

fn lock(outputs: &Mutex<Outputs>) -> MutexGuard<'_, Outputs> {
    outputs.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `record` against the outputs unless the output cap is reached.
fn record(outputs: &Mutex<Outputs>, record: impl FnOnce(&mut Outputs)) -> HostResult<()> {
    let mut out = lock(outputs);
    if out.count() >= MAX_OUTPUTS {
        return refuse(format!(
            "output limit: a script may produce at most {MAX_OUTPUTS} actions, checklist items and denials"
        ));
    }
    record(&mut out);
    Ok(())
}

fn timing(anchor: Anchor, amount: i64, minutes_per_unit: i64) -> HostResult<Timing> {
    let limit = MAX_OFFSET_DAYS * 24 * 60 / minutes_per_unit;
    if amount.abs() > limit {
        return refuse(format!(
            "offset limit: timings reach at most {MAX_OFFSET_DAYS} days either way"
        ));
    }
    Ok(Timing {
        anchor,
        offset_minutes: amount * minutes_per_unit,
    })
}

const MINUTES_PER_DAY: i64 = 24 * 60;

/// The contact-role kinds a deal's buying committee knows.
pub const CONTACT_ROLES: &[&str] = &[
    "decision_maker",
    "economic_buyer",
    "champion",
    "influencer",
    "technical_buyer",
    "user",
    "blocker",
];

impl Default for ScriptEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptEngine {
    pub fn new() -> ScriptEngine {
        let outputs = Arc::new(Mutex::new(Outputs::default()));
        let mut engine = Engine::new();
        engine
            .set_strict_variables(true)
            .set_fail_on_invalid_map_property(true)
            .set_allow_looping(true)
            .disable_symbol("eval");
        // print and debug would write into the worker's protocol stream.
        engine.on_print(|_| {}).on_debug(|_, _, _| {});
        engine.register_type_with_name::<Timing>("Timing");

        let out = Arc::clone(&outputs);
        engine.register_fn("require", move |ok: bool, what: &str| -> HostResult<()> {
            let what = text("a requirement", what)?;
            record(&out, |o| match o.event {
                Some(Event::Enter) if !ok => o.outcome.denials.push(format!("requires {what}")),
                Some(Event::Guidance) => o.outcome.checklist.push(ChecklistItem {
                    text: what,
                    done: Some(ok),
                }),
                _ => {}
            })
        });
        let out = Arc::clone(&outputs);
        engine.register_fn("deny", move |message: &str| -> HostResult<()> {
            let message = text("a denial", message)?;
            record(&out, |o| {
                if o.event == Some(Event::Enter) {
                    o.outcome.denials.push(message);
                }
            })
        });
        let out = Arc::clone(&outputs);
        engine.register_fn("checklist", move |item: &str| -> HostResult<()> {
            let item = text("a checklist item", item)?;
            record(&out, |o| {
                o.outcome.checklist.push(ChecklistItem {
                    text: item,
                    done: None,
                })
            })
        });
        let out = Arc::clone(&outputs);
        engine.register_fn("key_field", move |field: &str| -> HostResult<()> {
            let known = fields_of("deal").unwrap_or_default();
            if !known.contains(&field) {
                return refuse(format!(
                    "unknown deal field `{}`; known fields: {}",
                    shown(field),
                    known.join(", ")
                ));
            }
            record(&out, |o| o.outcome.key_fields.push(field.to_owned()))
        });
        let out = Arc::clone(&outputs);
        engine.register_fn(
            "remind",
            move |to: &str, when: Timing, message: &str| -> HostResult<()> {
                let to = recipient(to)?;
                let message = text("a reminder message", message)?;
                record(&out, |o| {
                    o.outcome.actions.push(Action::Remind {
                        to,
                        timing: when,
                        message,
                    })
                })
            },
        );
        let out = Arc::clone(&outputs);
        engine.register_fn(
            "task",
            move |to: &str, title: &str, when: Timing| -> HostResult<()> {
                let assignee = recipient(to)?;
                let title = text("a task title", title)?;
                record(&out, |o| {
                    o.outcome.actions.push(Action::Task {
                        assignee,
                        title,
                        timing: when,
                    })
                })
            },
        );
        let out = Arc::clone(&outputs);
        engine.register_fn(
            "set_field",
            move |field: &str, value: Dynamic| -> HostResult<()> {
                let Some(field) = SettableField::parse(field) else {
                    let allowed: Vec<&str> =
                        SettableField::ALL.iter().map(|f| f.as_str()).collect();
                    return refuse(format!(
                        "`{}` cannot be set by a script; allowed: {}",
                        shown(field),
                        allowed.join(", ")
                    ));
                };
                let value = text("a field value", &value.to_string())?;
                record(&out, |o| {
                    o.outcome.actions.push(Action::SetField { field, value })
                })
            },
        );
        let out = Arc::clone(&outputs);
        engine.register_fn("require_approval", move |reason: &str| -> HostResult<()> {
            let reason = text("an approval reason", reason)?;
            record(&out, |o| {
                o.outcome.actions.push(Action::RequireApproval { reason })
            })
        });

        let out = Arc::clone(&outputs);
        engine.register_fn("has_role", move |kind: &str| -> HostResult<bool> {
            if !CONTACT_ROLES.contains(&kind) {
                return refuse(format!(
                    "unknown contact role `{}`; known roles: {}",
                    shown(kind),
                    CONTACT_ROLES.join(", ")
                ));
            }
            Ok(lock(&out).roles.iter().any(|r| r == kind))
        });

        engine.register_fn("after_days", |n: i32| {
            timing(Anchor::Transition, n.into(), MINUTES_PER_DAY)
        });
        engine.register_fn("after_hours", |n: i32| {
            timing(Anchor::Transition, n.into(), 60)
        });
        engine.register_fn("before_close_days", |n: i32| {
            timing(Anchor::ExpectedCloseDate, -i64::from(n), MINUTES_PER_DAY)
        });
        engine.register_fn("idle_days", |n: i32| {
            timing(Anchor::LastActivity, n.into(), MINUTES_PER_DAY)
        });

        ScriptEngine { engine, outputs }
    }

    /// Checks `source` without running it: size, nesting, syntax, forbidden constructs
    /// and every `variable.field` it names. Returns all problems found.
    pub fn compile(&self, source: &str) -> Result<CompiledScript, Vec<Diagnostic>> {
        pre_scan(source).map_err(|d| vec![d])?;
        let mut scope = sample_scope();
        let ast = self
            .engine
            .compile_with_scope(&scope, source)
            .map_err(|err| vec![Diagnostic::at(err.err_type().to_string(), err.position())])?;
        scope.clear();
        let problems = static_check(&ast);
        if problems.is_empty() {
            Ok(CompiledScript { ast })
        } else {
            Err(problems)
        }
    }

    /// Runs `script` against `context` and returns what it asked for.
    pub fn evaluate(
        &self,
        script: &CompiledScript,
        context: &StageContext,
    ) -> Result<Outcome, Diagnostic> {
        {
            let mut out = lock(&self.outputs);
            *out = Outputs {
                event: Some(context.event),
                roles: context
                    .contact_roles
                    .iter()
                    .map(|r| r.role.clone())
                    .collect(),
                outcome: Outcome::default(),
            };
        }
        let mut scope = scope_for(context);
        let result = self.engine.run_ast_with_scope(&mut scope, &script.ast);
        let mut out = lock(&self.outputs);
        let outcome = std::mem::take(&mut out.outcome);
        out.event = None;
        match result {
            Ok(()) => Ok(outcome),
            Err(err) => Err(runtime_diagnostic(*err)),
        }
    }
}

/// `text` cut to `max` characters, marked with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max).chain("…".chars()).collect()
    }
}

/// A script's own words, as quoted back in an error: short, whatever it passed.
fn shown(text: &str) -> String {
    clip(text, 40)
}

/// Longest diagnostic message returned, in characters (a script can `throw` anything).
pub const MAX_DIAGNOSTIC: usize = 500;

fn recipient(to: &str) -> HostResult<Recipient> {
    Recipient::parse(to).ok_or_else(|| {
        format!(
            "unknown recipient `{}`; use \"owner\", \"territory_manager\" or \"role:<admin|sales_manager|rep>\"",
            shown(to)
        )
        .into()
    })
}

/// Keeps the position of the innermost error (a host function's refusal is wrapped in
/// the call that made it) and its own words.
fn runtime_diagnostic(err: EvalAltResult) -> Diagnostic {
    let mut d = innermost(err);
    d.message = clip(&d.message, MAX_DIAGNOSTIC);
    d
}

fn innermost(err: EvalAltResult) -> Diagnostic {
    let position = err.position();
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => innermost(*inner),
        EvalAltResult::ErrorRuntime(value, pos) => Diagnostic::at(value.to_string(), pos),
        other => Diagnostic::at(
            other.to_string().replace(&format!(" ({position})"), ""),
            position,
        ),
    }
}

/// Refuses, before Rhai's parser sees it, what would make it recurse too deep or
/// allocate too much: oversize sources, deep bracket nesting, long runs of unary
/// operators. Strings and comments are skipped.
fn pre_scan(source: &str) -> Result<(), Diagnostic> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(Diagnostic::nowhere(format!(
            "size limit: a script may be at most {MAX_SOURCE_BYTES} bytes, this one has {}",
            source.len()
        )));
    }
    let mut depth = 0usize;
    let mut unary_run = 0usize;
    for (c, line, column) in CodeChars::new(source) {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic {
                        message: format!(
                            "nesting limit: brackets may nest at most {MAX_NESTING} levels deep"
                        ),
                        line,
                        column,
                    });
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if matches!(c, '-' | '!' | '+') {
            unary_run += 1;
            if unary_run > MAX_NESTING {
                return Err(Diagnostic {
                    message: format!("nesting limit: at most {MAX_NESTING} operators in a row"),
                    line,
                    column,
                });
            }
        } else if !c.is_whitespace() {
            unary_run = 0;
        }
    }
    Ok(())
}

/// Whether `source` names `variable` anywhere in its code, outside string literals and
/// comments (but inside the expressions a backtick string interpolates). Cheap enough to
/// ask before every run, and it errs only one way: a script that reads the variable
/// always answers true, so the server may skip loading what a script answering false
/// cannot read.
pub fn mentions(source: &str, variable: &str) -> bool {
    let mut found = false;
    code_words(source, |word| found |= word == variable);
    found
}

/// Calls `each` with every word (identifier or keyword) of `source`'s code, in order.
fn code_words(source: &str, mut each: impl FnMut(&str)) {
    let mut word = String::new();
    for (c, _, _) in CodeChars::new(source).chain([(' ', 0, 0)]) {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else if !word.is_empty() {
            each(&word);
            word.clear();
        }
    }
}

/// The parts of a [`StageContext`] that cost the server reads of their own, and whether
/// a script can read each. A part a script cannot read may be left empty.
///
/// A script reaches a context variable only by its name (there is no `eval` and no
/// look-up of a variable by a string), and `has_role` reads the contact roles. A host
/// function can also be called through a function pointer made from a string
/// (`Fn("has_role")`), whose name is then invisible here, so a script that makes one
/// reads everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// `roles`, and `has_role`.
    pub roles: bool,
    /// `history`.
    pub history: bool,
    /// `activity`.
    pub activity: bool,
    /// `committee`.
    pub committee: bool,
}

impl Reads {
    pub const ALL: Reads = Reads {
        roles: true,
        history: true,
        activity: true,
        committee: true,
    };

    /// What `source` can read, found from the names in its code.
    pub fn of(source: &str) -> Reads {
        let mut reads = Reads::default();
        code_words(source, |word| match word {
            "roles" | "has_role" => reads.roles = true,
            "history" => reads.history = true,
            "activity" => reads.activity = true,
            "committee" => reads.committee = true,
            "Fn" => reads = Reads::ALL,
            _ => {}
        });
        reads
    }

    /// What either of two scripts can read.
    pub fn and(self, other: Reads) -> Reads {
        Reads {
            roles: self.roles || other.roles,
            history: self.history || other.history,
            activity: self.activity || other.activity,
            committee: self.committee || other.committee,
        }
    }
}

/// The characters of a script that are code, with their line and column. A string or
/// character literal comes out as its opening quote and a comment as `/`, so brackets
/// and names inside them count for nothing. A backtick string comes out as its opening
/// backtick too, except the expressions it interpolates (`${...}`), which are code,
/// however deeply they nest strings of their own.
struct CodeChars<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
    /// Inside the text of a backtick string.
    in_template_text: bool,
    /// For each `${` being read (innermost last): how many `{` it has opened since.
    interpolations: Vec<usize>,
}

impl<'a> CodeChars<'a> {
    fn new(source: &'a str) -> Self {
        CodeChars {
            chars: source.chars().peekable(),
            line: 1,
            column: 0,
            in_template_text: false,
            interpolations: Vec::new(),
        }
    }

    /// The next character of the source, counted into the position.
    fn advance(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        self.column += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 0;
        }
        Some(c)
    }

    /// Passes over backtick string text up to its end or its next `${`.
    fn skip_template_text(&mut self) -> Option<()> {
        loop {
            match self.advance()? {
                // A doubled backtick stands for one; either reading stays in text.
                '`' if self.chars.peek() == Some(&'`') => {
                    self.advance();
                }
                '`' => {
                    self.in_template_text = false;
                    return Some(());
                }
                '$' if self.chars.peek() == Some(&'{') => {
                    self.advance();
                    self.interpolations.push(0);
                    self.in_template_text = false;
                    return Some(());
                }
                _ => {}
            }
        }
    }
}

impl Iterator for CodeChars<'_> {
    type Item = (char, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.in_template_text {
                self.skip_template_text()?;
                continue;
            }
            let c = self.advance()?;
            let at = (c, self.line, self.column);
            match c {
                '`' => self.in_template_text = true,
                '{' => {
                    if let Some(open) = self.interpolations.last_mut() {
                        *open += 1;
                    }
                }
                '}' => match self.interpolations.last_mut() {
                    // The end of an interpolation: back to its string's text.
                    Some(0) => {
                        self.interpolations.pop();
                        self.in_template_text = true;
                        continue;
                    }
                    Some(open) => *open -= 1,
                    None => {}
                },
                '"' | '\'' => {
                    // Skip the literal, honouring backslash escapes.
                    while let Some(inner) = self.advance() {
                        if inner == '\\' {
                            self.advance();
                        } else if inner == c {
                            break;
                        }
                    }
                }
                '/' if self.chars.peek() == Some(&'/') => {
                    while let Some(inner) = self.advance() {
                        if inner == '\n' {
                            break;
                        }
                    }
                }
                '/' if self.chars.peek() == Some(&'*') => {
                    // Rhai block comments nest; so does their scan.
                    self.advance();
                    let mut comment_depth = 1usize;
                    let mut previous = ' ';
                    while let Some(inner) = self.advance() {
                        match (previous, inner) {
                            ('*', '/') => {
                                comment_depth -= 1;
                                previous = ' ';
                                if comment_depth == 0 {
                                    break;
                                }
                                continue;
                            }
                            ('/', '*') => {
                                comment_depth += 1;
                                previous = ' ';
                                continue;
                            }
                            _ => {}
                        }
                        previous = inner;
                    }
                }
                _ => {}
            }
            return Some(at);
        }
    }
}

/// Walks every branch of the script, not only the ones a sample deal would take:
/// unknown `variable.field` names and oversize string literals are errors.
fn static_check(ast: &AST) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(expr)) = path.last() else {
            return true;
        };
        match expr {
            Expr::Dot(binary, _, _) => {
                if let (Expr::Variable(var, _, _), Expr::Property(prop, pos)) =
                    (&binary.lhs, &binary.rhs)
                {
                    let (variable, field) = (var.1.as_str(), prop.2.as_str());
                    if let Some(fields) = fields_of(variable)
                        && !fields.contains(&field)
                    {
                        problems.push(Diagnostic::at(unknown_field(variable, field, fields), *pos));
                    }
                }
            }
            Expr::StringConstant(text, pos) if text.chars().count() > MAX_STRING_LITERAL => {
                problems.push(Diagnostic::at(
                    format!(
                        "size limit: string literals may be at most {MAX_STRING_LITERAL} characters"
                    ),
                    *pos,
                ));
            }
            _ => {}
        }
        true
    });
    problems
}

fn unknown_field(variable: &str, field: &str, fields: &[&str]) -> String {
    if fields.is_empty() {
        format!("`{variable}` has no fields")
    } else if matches!(variable, "roles" | "history") {
        format!(
            "`{variable}` is a list; index it or loop over it to read {}",
            fields.join(", ")
        )
    } else {
        format!(
            "unknown field `{variable}.{field}`; {variable} has {}",
            fields.join(", ")
        )
    }
}

/// A scope with every variable present, for compiling under strict variables.
fn sample_scope() -> Scope<'static> {
    scope_for(&StageContext::sample(Event::Enter, "Sample"))
}

fn opt<T: Into<Dynamic>>(value: Option<T>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Into::into)
}

/// Rhai integers are 32-bit here; day counts are clamped into them.
fn days(value: i64) -> Dynamic {
    Dynamic::from_int(value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
}

fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days()
}

fn scope_for(ctx: &StageContext) -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push_constant("event", ctx.event.as_str());
    scope.push_constant("stage", ctx.stage.clone());
    scope.push_constant_dynamic("from_stage", opt(ctx.from_stage.clone()));

    let d = &ctx.deal;
    let mut deal = Map::new();
    deal.insert("id".into(), d.id.clone().into());
    deal.insert("name".into(), d.name.clone().into());
    deal.insert("amount".into(), Dynamic::from_decimal(d.amount));
    deal.insert("currency".into(), d.currency.clone().into());
    deal.insert(
        "expected_close_date".into(),
        opt(d.expected_close_date.map(|date| date.to_string())),
    );
    deal.insert(
        "days_to_close".into(),
        d.expected_close_date.map_or(Dynamic::UNIT, |date| {
            days((date - ctx.now.date_naive()).num_days())
        }),
    );
    deal.insert("source".into(), opt(d.source.clone()));
    deal.insert("grade".into(), opt(d.grade.clone()));
    deal.insert("stage".into(), d.stage.clone().into());
    deal.insert("probability".into(), Dynamic::from_int(d.probability));
    deal.insert(
        "days_in_stage".into(),
        days(days_between(d.stage_entered_at, ctx.now)),
    );
    deal.insert("age_days".into(), days(days_between(d.created_at, ctx.now)));
    scope.push_constant("deal", deal);

    let account = ctx.account.as_ref().map_or(Dynamic::UNIT, |a| {
        let mut map = Map::new();
        map.insert("name".into(), a.name.clone().into());
        map.insert("industry".into(), opt(a.industry.clone()));
        map.insert("country".into(), opt(a.country.clone()));
        map.insert("region".into(), opt(a.region.clone()));
        map.insert("size".into(), opt(a.size.clone()));
        map.insert(
            "annual_revenue".into(),
            a.annual_revenue
                .map_or(Dynamic::UNIT, Dynamic::from_decimal),
        );
        map.into()
    });
    scope.push_constant_dynamic("account", account);

    let mut owner = Map::new();
    owner.insert("name".into(), ctx.owner.name.clone().into());
    owner.insert("email".into(), ctx.owner.email.clone().into());
    owner.insert("role".into(), ctx.owner.role.clone().into());
    scope.push_constant("owner", owner);

    let roles: rhai::Array = ctx
        .contact_roles
        .iter()
        .map(|r| {
            let mut map = Map::new();
            map.insert("contact".into(), r.contact.clone().into());
            map.insert("title".into(), opt(r.title.clone()));
            map.insert("role".into(), r.role.clone().into());
            map.insert("primary".into(), r.primary.into());
            map.into()
        })
        .collect();
    scope.push_constant("roles", roles);

    let history: rhai::Array = ctx
        .history
        .iter()
        .map(|t| {
            let mut map = Map::new();
            map.insert("from".into(), opt(t.from.clone()));
            map.insert("to".into(), t.to.clone().into());
            map.insert("at".into(), t.at.to_rfc3339().into());
            map.insert(
                "days_in_previous".into(),
                t.days_in_previous.map_or(Dynamic::UNIT, days),
            );
            map.into()
        })
        .collect();
    scope.push_constant("history", history);

    let mut activity = Map::new();
    activity.insert("count".into(), days(ctx.activity.count));
    activity.insert(
        "last_at".into(),
        opt(ctx.activity.last_at.map(|at| at.to_rfc3339())),
    );
    activity.insert(
        "days_since_last".into(),
        ctx.activity
            .last_at
            .map_or(Dynamic::UNIT, |at| days(days_between(at, ctx.now))),
    );
    scope.push_constant("activity", activity);

    let quote = ctx.quote.as_ref().map_or(Dynamic::UNIT, |q| {
        let mut map = Map::new();
        map.insert("total".into(), Dynamic::from_decimal(q.total));
        map.insert(
            "discount_percent".into(),
            Dynamic::from_decimal(q.discount_percent),
        );
        map.into()
    });
    scope.push_constant_dynamic("quote", quote);

    let c = &ctx.committee;
    let mut committee = Map::new();
    for role in KEY_ROLES {
        committee.insert(
            format!("has_{role}").into(),
            c.filled.iter().any(|r| r == role).into(),
        );
        committee.insert(
            format!("engaged_{role}").into(),
            c.engaged.iter().any(|r| r == role).into(),
        );
    }
    let missing: rhai::Array = KEY_ROLES
        .iter()
        .filter(|role| !c.filled.iter().any(|r| r == *role))
        .map(|role| Dynamic::from(role.to_string()))
        .collect();
    committee.insert("missing".into(), missing.into());
    let filled = KEY_ROLES
        .iter()
        .filter(|role| c.filled.iter().any(|r| r == *role))
        .count();
    committee.insert(
        "coverage".into(),
        Dynamic::from_decimal(Decimal::new(filled as i64 * 25, 2)),
    );
    committee.insert("blockers".into(), days(c.blockers));
    committee.insert(
        "path_strength".into(),
        c.path_strength.map_or(Dynamic::UNIT, Dynamic::from_decimal),
    );
    committee.insert("path_hops".into(), c.path_hops.map_or(Dynamic::UNIT, days));
    scope.push_constant("committee", committee);
    scope
}
