//! Runs stage scripts outside the server process.
//!
//! Rhai's own limits are compiled out of this binary (casbin enables `unchecked`; see
//! DESIGN.md), so a script is never compiled or run in the server. A small pool of
//! worker processes (`accord script-worker`, see [`worker`]) does it: each runs at a
//! lower CPU priority, caps its own memory, and is killed by the server when a request
//! outlives the wall-clock limit. A dead or killed worker is replaced on the next
//! request; the pool's size bounds how much CPU scripts can take at once.

pub mod memory;
pub mod worker;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use accord_workflows::engine::{MAX_DIAGNOSTIC, clip};
use accord_workflows::{Diagnostic, Outcome, StageContext};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Compile {
        source: String,
    },
    Evaluate {
        source: String,
        context: Box<StageContext>,
    },
    /// Several evaluations in one exchange: a move's exit and entry scripts, say.
    EvaluateAll {
        runs: Vec<Run>,
    },
}

/// One script against one context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub source: String,
    pub context: Box<StageContext>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Compiled,
    Evaluated(Outcome),
    Failed(Vec<Diagnostic>),
    /// Per run of an [`Request::EvaluateAll`], in order.
    EvaluatedAll(Vec<Result<Outcome, Vec<Diagnostic>>>),
}

/// How the sandbox runs its workers.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `accord` binary to start as `<program> script-worker`.
    pub program: PathBuf,
    pub workers: usize,
    pub time_limit: Duration,
    pub memory_limit_bytes: usize,
}

impl SandboxConfig {
    pub fn memory_limit_mib(&self) -> usize {
        self.memory_limit_bytes / (1024 * 1024)
    }
}

/// Why a request did not produce a reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// The script broke a limit or was refused; the diagnostics say which.
    #[error("script refused")]
    Script(Vec<Diagnostic>),
    /// No worker of the lane was free in time; the diagnostics say so.
    #[error("script sandbox busy")]
    Busy(Vec<Diagnostic>),
    /// The sandbox itself failed (the worker could not start, say).
    #[error("script sandbox unavailable: {0}")]
    Unavailable(String),
}

/// Which work a request belongs to. Each lane has its own workers, so that authoring
/// tools (validate, dry-run, replay), however hostile the script under test, never hold
/// up stage moves, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Stage moves, deal creation, guidance: published scripts.
    Moves,
    /// Validation, dry-runs and replays: drafts, possibly hostile.
    Authoring,
}

pub struct Sandbox {
    config: SandboxConfig,
    lanes: [Pool; 2],
}

struct Pool {
    idle: Mutex<Vec<Worker>>,
    slots: Semaphore,
}

/// The longest a request waits for a free worker before the sandbox answers "busy".
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// The largest reply a worker may send; a longer one ends the worker.
const MAX_REPLY_BYTES: u64 = 1024 * 1024;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
}

const STDERR_KEPT: usize = 4096;

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Arc<Sandbox> {
        let pool = || Pool {
            slots: Semaphore::new(config.workers.max(1)),
            idle: Mutex::new(Vec::new()),
        };
        Arc::new(Sandbox {
            lanes: [pool(), pool()],
            config,
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Compiles and checks `source` (size, nesting, syntax, unknown fields).
    pub async fn compile(&self, lane: Lane, source: &str) -> Result<(), SandboxError> {
        match self
            .call(
                lane,
                &Request::Compile {
                    source: source.to_owned(),
                },
            )
            .await?
        {
            Reply::Compiled => Ok(()),
            Reply::Failed(problems) => Err(SandboxError::Script(bounded(problems))),
            Reply::Evaluated(_) | Reply::EvaluatedAll(_) => {
                Err(SandboxError::Unavailable("unexpected reply".into()))
            }
        }
    }

    pub async fn evaluate(
        &self,
        lane: Lane,
        source: &str,
        context: StageContext,
    ) -> Result<Outcome, SandboxError> {
        match self
            .call(
                lane,
                &Request::Evaluate {
                    source: source.to_owned(),
                    context: Box::new(context),
                },
            )
            .await?
        {
            Reply::Evaluated(outcome) => within_output_limits(outcome),
            Reply::Failed(problems) => Err(SandboxError::Script(bounded(problems))),
            Reply::Compiled | Reply::EvaluatedAll(_) => {
                Err(SandboxError::Unavailable("unexpected reply".into()))
            }
        }
    }

    /// Evaluates several scripts in one exchange with a worker (one process round trip
    /// instead of one each); the answers come in the order of `runs`. The exchange has
    /// one script's time limit, and each script the whole memory allowance. When the
    /// exchange breaks a limit (the worker is stopped, and which script did it goes with
    /// it), each script runs again alone under its own limits, so that the error names
    /// the script that broke one.
    pub async fn evaluate_all(
        &self,
        lane: Lane,
        runs: Vec<Run>,
    ) -> Vec<Result<Outcome, SandboxError>> {
        if runs.len() < 2 {
            return self.evaluate_each(lane, runs).await;
        }
        let request = Request::EvaluateAll { runs: runs.clone() };
        match self.call(lane, &request).await {
            Ok(Reply::EvaluatedAll(replies)) if replies.len() == runs.len() => replies
                .into_iter()
                .map(|reply| match reply {
                    Ok(outcome) => within_output_limits(outcome),
                    Err(problems) => Err(SandboxError::Script(bounded(problems))),
                })
                .collect(),
            // No worker reached, or none could run: the same for every script.
            Err(err @ (SandboxError::Busy(_) | SandboxError::Unavailable(_))) => {
                runs.iter().map(|_| Err(err.clone())).collect()
            }
            // A limit broken (or a reply that makes no sense): each alone, to say which.
            Ok(_) | Err(SandboxError::Script(_)) => self.evaluate_each(lane, runs).await,
        }
    }

    async fn evaluate_each(
        &self,
        lane: Lane,
        runs: Vec<Run>,
    ) -> Vec<Result<Outcome, SandboxError>> {
        let mut answers = Vec::with_capacity(runs.len());
        for run in runs {
            answers.push(self.evaluate(lane, &run.source, *run.context).await);
        }
        answers
    }

    async fn call(&self, lane: Lane, request: &Request) -> Result<Reply, SandboxError> {
        let pool = &self.lanes[lane as usize];
        let _slot = tokio::time::timeout(QUEUE_WAIT, pool.slots.acquire())
            .await
            .map_err(|_| {
                SandboxError::Busy(vec![limit(format!(
                    "sandbox busy: no script worker was free within {} s; try again",
                    QUEUE_WAIT.as_secs()
                ))])
            })?
            .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        let mut line =
            serde_json::to_vec(request).map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        line.push(b'\n');
        // A worker that sat idle may have died meanwhile (killed from outside); if it
        // fails before answering, the request gets one fresh worker.
        let mut reused = pool.idle.lock().pop();
        loop {
            let was_reused = reused.is_some();
            let mut worker = match reused.take() {
                Some(worker) => worker,
                None => self.spawn().await?,
            };
            worker.stderr.lock().clear();
            let exchange = async {
                worker.stdin.write_all(&line).await?;
                worker.stdin.flush().await?;
                let mut reply = String::new();
                (&mut worker.stdout)
                    .take(MAX_REPLY_BYTES)
                    .read_line(&mut reply)
                    .await?;
                Ok::<String, std::io::Error>(reply)
            };
            match tokio::time::timeout(self.config.time_limit, exchange).await {
                Ok(Ok(reply)) if reply.ends_with('\n') => {
                    let parsed = serde_json::from_str(&reply)
                        .map_err(|e| SandboxError::Unavailable(format!("bad reply: {e}")));
                    if parsed.is_ok() {
                        pool.idle.lock().push(worker);
                    }
                    return parsed;
                }
                Ok(Ok(reply)) if reply.len() as u64 >= MAX_REPLY_BYTES => {
                    end(worker).await;
                    return Err(SandboxError::Script(vec![limit(format!(
                        "output limit: the script's answer exceeded {} KiB",
                        MAX_REPLY_BYTES / 1024
                    ))]));
                }
                Ok(Ok(reply)) if reply.is_empty() && was_reused => end(worker).await,
                Ok(Err(_)) if was_reused => end(worker).await,
                Ok(_) => return Err(self.died(worker).await),
                Err(_elapsed) => {
                    end(worker).await;
                    return Err(SandboxError::Script(vec![limit(format!(
                        "time limit: the script ran longer than {} ms and was stopped",
                        self.config.time_limit.as_millis()
                    ))]));
                }
            }
        }
    }

    /// Names the limit a worker died of, from what it said on stderr.
    async fn died(&self, mut worker: Worker) -> SandboxError {
        let _ = worker.child.start_kill();
        let status = tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await;
        // Give the stderr reader a moment to take the last words.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let said = worker.stderr.lock().clone();
        let message = if said.contains(memory::MEMORY_LIMIT_MARK) {
            format!(
                "memory limit: the script needed more than {} MiB and was stopped",
                self.config.memory_limit_mib()
            )
        } else if said.contains("overflowed its stack") {
            "nesting limit: the script nested too deeply for the evaluator's stack".to_owned()
        } else {
            tracing::warn!(?status, stderr = %said, "script worker died");
            "the script stopped the evaluator".to_owned()
        };
        SandboxError::Script(vec![limit(message)])
    }

    async fn spawn(&self) -> Result<Worker, SandboxError> {
        let unavailable = |e: std::io::Error| SandboxError::Unavailable(e.to_string());
        let mut child = Command::new(&self.config.program)
            .arg("script-worker")
            .arg(self.config.memory_limit_bytes.to_string())
            .arg(self.config.time_limit.as_millis().to_string())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(unavailable)?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SandboxError::Unavailable("worker pipes missing".into()));
        };
        let said = Arc::new(Mutex::new(String::new()));
        let keep = Arc::clone(&said);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut kept = keep.lock();
                kept.push_str(&String::from_utf8_lossy(&buf[..n]));
                if kept.len() > STDERR_KEPT {
                    let cut = kept.len() - STDERR_KEPT;
                    let cut = (cut..kept.len())
                        .find(|&i| kept.is_char_boundary(i))
                        .unwrap_or(kept.len());
                    kept.drain(..cut);
                }
            }
        });
        let mut stdout = BufReader::new(stdout);
        let mut ready = String::new();
        let started = tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut ready))
            .await
            .map_err(|_| SandboxError::Unavailable("worker did not start in 10 s".into()))?
            .map_err(unavailable)?;
        if started == 0 || ready.trim() != worker::READY {
            return Err(SandboxError::Unavailable(format!(
                "worker failed to start: {}",
                said.lock()
            )));
        }
        Ok(Worker {
            child,
            stdin,
            stdout,
            stderr: said,
        })
    }
}

/// A script's answer, if it stays within the limits on what one may ask for.
fn within_output_limits(outcome: Outcome) -> Result<Outcome, SandboxError> {
    match outcome.check_limits() {
        Ok(()) => Ok(outcome),
        Err(broken) => Err(SandboxError::Script(vec![limit(format!(
            "output limit: the script's answer holds {broken}"
        ))])),
    }
}

/// At most a few problems of bounded length reach the caller, whatever a worker sent.
fn bounded(mut problems: Vec<Diagnostic>) -> Vec<Diagnostic> {
    const MOST: usize = 20;
    problems.truncate(MOST);
    if problems.is_empty() {
        problems.push(limit("the script failed without saying why".into()));
    }
    for p in &mut problems {
        p.message = clip(&p.message, MAX_DIAGNOSTIC);
    }
    problems
}

/// Kills a worker and reaps it.
async fn end(mut worker: Worker) {
    let _ = worker.child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await;
}

fn limit(message: String) -> Diagnostic {
    Diagnostic {
        message,
        line: 0,
        column: 0,
    }
}
