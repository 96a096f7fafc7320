//! The script worker: `accord script-worker`, a child process of the server that
//! compiles and evaluates stage scripts, one request at a time, under a memory cap.
//!
//! Protocol: one JSON [`Request`] per line on stdin, one JSON [`Reply`] per line on
//! stdout, after a first line `ready`. Nothing else is ever written to stdout (the
//! engine silences `print` and `debug`). The server enforces the wall-clock limit by
//! killing the process; the worker enforces the memory cap itself (see `memory`).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use accord_workflows::{CompiledScript, Diagnostic, ScriptEngine, StageContext};

use super::memory;
use super::{Reply, Request};

/// The worker's first line. It names the build, so that a server never talks to a
/// worker of another version (after an in-place upgrade, say).
pub const READY: &str = concat!("ready accord ", env!("CARGO_PKG_VERSION"));

/// Compiled scripts kept per worker; beyond this the cache starts over.
const CACHE_ENTRIES: usize = 256;
/// Runs the worker until stdin closes. `memory_bytes` is each request's allowance;
/// `time_limit` is the server's wall-clock limit. A request still running well past it
/// means the server is gone (it would have killed us), so the worker ends itself.
pub fn run(memory_bytes: usize, time_limit: Duration) -> anyhow::Result<()> {
    lower_priority();
    memory::start_counting();
    let busy_since = Arc::new(AtomicU64::new(0));
    spawn_orphan_watchdog(
        Arc::clone(&busy_since),
        time_limit.saturating_mul(4) + Duration::from_secs(2),
    );

    let engine = ScriptEngine::new();
    let mut cache: HashMap<String, CompiledScript> = HashMap::new();
    let started = Instant::now();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{READY}")?;
    stdout.flush()?;
    for line in stdin.lock().lines() {
        let line = line?;
        let request: Request = serde_json::from_str(&line)?;
        busy_since.store(started.elapsed().as_millis().max(1) as u64, Relaxed);
        let mut one = |source: &str, context: Option<&StageContext>| {
            guarded(memory_bytes, || {
                handle(&engine, &mut cache, source, context)
            })
        };
        let reply = match &request {
            Request::Compile { source } => one(source, None),
            Request::Evaluate { source, context } => one(source, Some(context)),
            Request::EvaluateAll { runs } => Reply::EvaluatedAll(
                runs.iter()
                    .map(|run| match one(&run.source, Some(&run.context)) {
                        Reply::Evaluated(outcome) => Ok(outcome),
                        Reply::Failed(problems) => Err(problems),
                        Reply::Compiled | Reply::EvaluatedAll(_) => Err(Vec::new()),
                    })
                    .collect(),
            ),
        };
        busy_since.store(0, Relaxed);
        serde_json::to_writer(&mut stdout, &reply)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(())
}

/// Runs one compile or evaluation with the whole memory allowance, a panic turned into
/// an error.
fn guarded(memory_bytes: usize, work: impl FnOnce() -> Reply) -> Reply {
    memory::allow_from_now(memory_bytes);
    let reply = catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Reply::Failed(vec![Diagnostic {
            message: "the script stopped the evaluator (a panic, such as an integer overflow)"
                .into(),
            line: 0,
            column: 0,
        }])
    });
    memory::allow_from_now(usize::MAX / 2);
    reply
}

/// Compiles `source` (or takes it from the cache) and, given a context, evaluates it.
fn handle(
    engine: &ScriptEngine,
    cache: &mut HashMap<String, CompiledScript>,
    source: &str,
    context: Option<&StageContext>,
) -> Reply {
    if !cache.contains_key(source) {
        match engine.compile(source) {
            Ok(script) => {
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(source.to_owned(), script);
            }
            Err(problems) => return Reply::Failed(problems),
        }
    }
    let Some(script) = cache.get(source) else {
        return Reply::Failed(Vec::new());
    };
    match context {
        None => Reply::Compiled,
        Some(context) => match engine.evaluate(script, context) {
            Ok(outcome) => Reply::Evaluated(outcome),
            Err(problem) => Reply::Failed(vec![problem]),
        },
    }
}

/// Scripts yield the CPU to the server's own work.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: setpriority on our own process; failure only leaves the priority as is.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn spawn_orphan_watchdog(busy_since: Arc<AtomicU64>, orphan_after: Duration) {
    let started = Instant::now();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let since = busy_since.load(Relaxed);
            if since > 0 {
                let now = started.elapsed().as_millis() as u64;
                if now.saturating_sub(since) > orphan_after.as_millis() as u64 {
                    std::process::exit(3);
                }
            }
        }
    });
}
