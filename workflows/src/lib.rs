//! Rhai stage-script engine. Pure: no database, no network, no clock of its own.
//!
//! This crate currently offers compilation with precise error positions; guards,
//! guidance, actions and the sandbox arrive with the stage-script work (see DESIGN.md,
//! "The casbin / Rhai trap", for why Rhai's own limits cannot be the sandbox).

use rhai::Engine;

/// A compile error with the 1-based position of the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct CompileError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Builds the engine every stage script is compiled with: no module imports, no `eval`.
pub fn engine() -> Engine {
    let mut engine = Engine::new_raw();
    engine.disable_symbol("eval");
    engine
}

/// Compiles `source`, returning the first syntax error with its position.
pub fn check_syntax(source: &str) -> Result<(), CompileError> {
    engine()
        .compile(source)
        .map(|_| ())
        .map_err(|err| CompileError {
            message: err.err_type().to_string(),
            line: err.position().line().unwrap_or(0),
            column: err.position().position().unwrap_or(0),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_script_compiles() {
        assert_eq!(check_syntax("let x = 1; if x > 0 { x } else { 0 }"), Ok(()));
    }

    #[test]
    fn syntax_error_reports_line_and_column() {
        let err = check_syntax("let x = 1;\nlet = 2;").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.column >= 4, "column was {}", err.column);
    }

    #[test]
    fn eval_is_refused() {
        assert!(check_syntax("eval(\"1\")").is_err());
    }
}
