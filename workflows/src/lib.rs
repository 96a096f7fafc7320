//! Rhai stage-script engine. Pure: no database, no network, no clock of its own.
//!
//! A stage script is evaluated with a [`StageContext`] (what it may read) and returns an
//! [`Outcome`] (what it asks for: denials, guidance, actions); the server applies it.
//! Rhai's own limits are compiled out of any binary that links casbin (see DESIGN.md,
//! "The casbin / Rhai trap"), so the server evaluates scripts only in a sandboxed worker
//! process; this crate refuses what can be refused before running and caps what a
//! running script may ask for.

pub mod context;
pub mod engine;
pub mod outcome;

pub use context::{Event, StageContext};
pub use engine::{CompiledScript, Diagnostic, ScriptEngine};
pub use outcome::{Action, Anchor, ChecklistItem, Outcome, Recipient, SettableField, Timing};

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str) -> Result<CompiledScript, Vec<Diagnostic>> {
        ScriptEngine::new().compile(source)
    }

    fn run(source: &str, event: Event) -> Result<Outcome, Diagnostic> {
        let engine = ScriptEngine::new();
        let script = engine.compile(source).expect("compiles");
        engine.evaluate(&script, &StageContext::sample(event, "Negotiation"))
    }

    const NEGOTIATION: &str = r#"
        require(has_role("economic_buyer"), "an economic buyer among the contact roles");
        require(quote != (), "a quote");
        require(has_role("champion"), "a champion");
        checklist("Agree the mutual close plan");
        key_field("amount");
        if event == "enter" {
            remind("owner", before_close_days(7), "Closes in a week: confirm the signatures");
            remind("territory_manager", before_close_days(7), "Closing in a week: " + deal.name);
            if quote != () && quote.discount_percent > 20 {
                require_approval("discount above 20%");
            }
        }
    "#;

    #[test]
    fn guard_names_everything_missing_on_entry() {
        let outcome = run(NEGOTIATION, Event::Enter).expect("runs");
        assert!(!outcome.allowed());
        assert_eq!(
            outcome.denial_message().as_deref(),
            Some("requires a champion")
        );
        assert_eq!(outcome.actions.len(), 2);
        assert_eq!(
            outcome.actions[0],
            Action::Remind {
                to: Recipient::Owner,
                timing: Timing {
                    anchor: Anchor::ExpectedCloseDate,
                    offset_minutes: -7 * 24 * 60
                },
                message: "Closes in a week: confirm the signatures".into()
            }
        );
    }

    #[test]
    fn guidance_turns_requirements_into_a_checklist_and_takes_no_action() {
        let outcome = run(NEGOTIATION, Event::Guidance).expect("runs");
        assert!(outcome.allowed());
        assert!(outcome.actions.is_empty());
        let items: Vec<(&str, Option<bool>)> = outcome
            .checklist
            .iter()
            .map(|i| (i.text.as_str(), i.done))
            .collect();
        assert_eq!(
            items,
            vec![
                ("an economic buyer among the contact roles", Some(true)),
                ("a quote", Some(true)),
                ("a champion", Some(false)),
                ("Agree the mutual close plan", None),
            ]
        );
        assert_eq!(outcome.key_fields, vec!["amount".to_owned()]);
    }

    #[test]
    fn exit_ignores_guards() {
        let outcome = run(
            "deny(\"never\"); remind(\"owner\", after_days(1), \"bye\");",
            Event::Exit,
        )
        .expect("runs");
        assert!(outcome.allowed());
        assert_eq!(outcome.actions.len(), 1);
    }

    #[test]
    fn decimals_compare_with_integers_and_decimal_literals() {
        let outcome = run(
            "if deal.amount > 40000 && deal.amount < 48000.50 { deny(\"big\") }",
            Event::Enter,
        )
        .expect("runs");
        assert_eq!(outcome.denial_message().as_deref(), Some("big"));
    }

    #[test]
    fn unknown_fields_are_found_in_branches_that_do_not_run() {
        let errors = compile("if false {\n  let x = deal.amout;\n}")
            .err()
            .expect("refused");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("deal.amout"), "{errors:?}");
        assert!(errors[0].message.contains("amount"), "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (2, 16));
    }

    #[test]
    fn unknown_variables_are_compile_errors_with_positions() {
        let errors = compile("let a = 1;\nlet b = dael.amount;")
            .err()
            .expect("refused");
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].message.contains("dael"), "{errors:?}");
    }

    #[test]
    fn scripts_cannot_write_what_they_read() {
        let engine = ScriptEngine::new();
        let refused = match engine.compile("deal.amount = 1;") {
            Err(_) => true,
            Ok(script) => engine
                .evaluate(&script, &StageContext::sample(Event::Enter, "X"))
                .is_err(),
        };
        assert!(refused);
    }

    #[test]
    fn host_functions_refuse_bad_arguments_with_the_rule_broken() {
        let err = run("remind(\"ceo\", after_days(1), \"hi\")", Event::Enter).unwrap_err();
        assert!(err.message.contains("unknown recipient `ceo`"), "{err:?}");
        assert_eq!(err.line, 1);
        let err = run("set_field(\"amount\", 5)", Event::Enter).unwrap_err();
        assert!(err.message.contains("cannot be set"), "{err:?}");
        let err = run("has_role(\"boss\")", Event::Enter).unwrap_err();
        assert!(err.message.contains("unknown contact role"), "{err:?}");
        let err = run(
            "remind(\"owner\", after_days(2000000000), \"x\")",
            Event::Enter,
        )
        .unwrap_err();
        assert!(err.message.contains("offset limit"), "{err:?}");
        let err = run(
            "let s = \"x\"; s.pad(600, \"y\"); remind(\"owner\", after_days(1), s)",
            Event::Enter,
        )
        .unwrap_err();
        assert!(err.message.contains("text limit"), "{err:?}");
        let err = run("for i in 0..1000 { checklist(\"again\") }", Event::Enter).unwrap_err();
        assert!(err.message.contains("output limit"), "{err:?}");
    }

    #[test]
    fn forbidden_constructs_are_refused_at_compile_time() {
        for source in [
            "eval(\"1\")",
            "import \"x\" as y;",
            "fn f(x) { f(x) } f(1)",
            "let f = |x| x; f(1)",
            "let n = 9999999999999999999999999999999999999999;",
        ] {
            assert!(compile(source).is_err(), "accepted: {source}");
        }
    }

    #[test]
    fn mentions_finds_names_in_code_only() {
        use crate::engine::mentions;
        assert!(mentions(
            "if committee.blockers > 0 { deny(\"x\") }",
            "committee"
        ));
        assert!(mentions("let c = committee;", "committee"));
        // Interpolated into a backtick string: read all the same.
        assert!(mentions(
            "checklist(`${committee.blockers} blockers`)",
            "committee"
        ));
        // After a string with an escaped quote, scanning goes on in code.
        assert!(mentions(
            "let s = \"a \\\" b\"; committee.filled",
            "committee"
        ));
        assert!(mentions(
            "/* a /* nested */ comment */ committee",
            "committee"
        ));
        // Only text, or a longer name.
        assert!(!mentions(
            "require(true, \"a buying committee\")",
            "committee"
        ));
        assert!(!mentions(
            "// the committee\n/* committee */ let x = 'c';",
            "committee"
        ));
        assert!(!mentions("let committee_size = 3;", "committee"));
        assert!(!mentions("deny(\"unterminated committee", "committee"));
        assert!(!mentions("checklist(`the committee`)", "committee"));
        // Every sample script that reads the committee says so.
        assert!(mentions(
            "require(committee.filled.contains(\"champion\"), \"a champion\")",
            "committee"
        ));
    }

    #[test]
    fn reads_names_the_context_parts_a_script_can_reach() {
        use crate::engine::Reads;
        assert_eq!(
            Reads::of("require(deal.amount > 0, \"an amount\")"),
            Reads::default()
        );
        assert_eq!(
            Reads::of("require(has_role(\"champion\"), \"a champion\")"),
            Reads {
                roles: true,
                ..Reads::default()
            }
        );
        assert_eq!(
            Reads::of("if history.len() > 3 && activity.count == 0 { deny(\"stalled\") }"),
            Reads {
                history: true,
                activity: true,
                ..Reads::default()
            }
        );
        // Named only in text: nothing to load.
        assert_eq!(
            Reads::of("deny(\"no roles, history, activity or committee\") // roles"),
            Reads::default()
        );
        assert_eq!(
            Reads::of("deny(`no roles or ${deal.name} history`)"),
            Reads::default()
        );
        // A quote, an apostrophe or `//` inside a backtick string is text: the code after
        // the string is still read.
        let roles_only = Reads {
            roles: true,
            ..Reads::default()
        };
        for source in [
            "let m = `can't`; if has_role(\"blocker\") { deny(\"blocker\") }",
            "let a = `\"`; if has_role(\"blocker\") { deny(\"x\") } let b = \"\";",
            "let u = `http://x`; if roles.len() == 0 { deny(\"no roles\") }",
            "let u = `a ``quoted`` ${ `in ${\"}\"} it` } b`; roles.len()",
            "checklist(`${ if roles.len() > 0 { \"some\" } else { \"none\" } }`)",
        ] {
            assert_eq!(Reads::of(source), roles_only, "{source}");
            assert!(compile(source).is_ok(), "{source}");
        }
        // A host function called through a pointer made from a string is invisible to
        // the scan, so such a script reads everything. It does run:
        let sneaky = "let f = Fn(\"has_\" + \"role\"); if !f.call(\"champion\") { deny(\"x\") }";
        assert_eq!(Reads::of(sneaky), Reads::ALL);
        assert!(run(sneaky, Event::Enter).is_ok());
        assert_eq!(
            Reads::of("roles.len()").and(Reads::of("committee.blockers")),
            Reads {
                roles: true,
                committee: true,
                ..Reads::default()
            }
        );
    }

    #[test]
    fn pre_scan_refuses_deep_nesting_and_oversize_sources() {
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        let errors = compile(&deep).err().expect("refused");
        assert!(errors[0].message.starts_with("nesting limit"), "{errors:?}");
        // A quote inside a backtick string hides nothing from the scan.
        let after_backtick = format!("let a = `\"`; let b = {deep};");
        let errors = compile(&after_backtick).err().expect("refused");
        assert!(errors[0].message.starts_with("nesting limit"), "{errors:?}");
        let unary = format!("let x = {}1;", "-".repeat(500));
        assert!(
            compile(&unary).err().expect("refused")[0]
                .message
                .starts_with("nesting limit")
        );
        let big = format!("let s = \"{}\";", "x".repeat(20_000));
        assert!(
            compile(&big).err().expect("refused")[0]
                .message
                .starts_with("size limit")
        );
        let literal = format!("let s = \"{}\";", "x".repeat(2_000));
        assert!(
            compile(&literal).err().expect("refused")[0]
                .message
                .starts_with("size limit")
        );
        // Brackets inside strings and comments do not count.
        let quoted = format!(
            "let s = \"{}\"; // {}\n/* {} */",
            "(".repeat(100),
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(compile(&quoted).is_ok());
    }
}
