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
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Compiled,
    Evaluated(Outcome),
    Failed(Vec<Diagnostic>),
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
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The script broke a limit or was refused; the diagnostics say which.
    #[error("script refused")]
    Script(Vec<Diagnostic>),
    /// The sandbox itself failed (the worker could not start, say).
    #[error("script sandbox unavailable: {0}")]
    Unavailable(String),
}

pub struct Sandbox {
    config: SandboxConfig,
    idle: Mutex<Vec<Worker>>,
    slots: Semaphore,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
}

const STDERR_KEPT: usize = 4096;

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Arc<Sandbox> {
        Arc::new(Sandbox {
            slots: Semaphore::new(config.workers.max(1)),
            idle: Mutex::new(Vec::new()),
            config,
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Compiles and checks `source` (size, nesting, syntax, unknown fields).
    pub async fn compile(&self, source: &str) -> Result<(), SandboxError> {
        match self
            .call(&Request::Compile {
                source: source.to_owned(),
            })
            .await?
        {
            Reply::Compiled => Ok(()),
            Reply::Failed(problems) => Err(SandboxError::Script(problems)),
            Reply::Evaluated(_) => Err(SandboxError::Unavailable("unexpected reply".into())),
        }
    }

    pub async fn evaluate(
        &self,
        source: &str,
        context: StageContext,
    ) -> Result<Outcome, SandboxError> {
        match self
            .call(&Request::Evaluate {
                source: source.to_owned(),
                context: Box::new(context),
            })
            .await?
        {
            Reply::Evaluated(outcome) => Ok(outcome),
            Reply::Failed(problems) => Err(SandboxError::Script(problems)),
            Reply::Compiled => Err(SandboxError::Unavailable("unexpected reply".into())),
        }
    }

    async fn call(&self, request: &Request) -> Result<Reply, SandboxError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        let idle = self.idle.lock().pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => self.spawn().await?,
        };
        let mut line =
            serde_json::to_vec(request).map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        line.push(b'\n');
        let exchange = async {
            worker.stdin.write_all(&line).await?;
            worker.stdin.flush().await?;
            let mut reply = String::new();
            worker.stdout.read_line(&mut reply).await?;
            Ok::<String, std::io::Error>(reply)
        };
        match tokio::time::timeout(self.config.time_limit, exchange).await {
            Ok(Ok(reply)) if !reply.is_empty() => {
                let parsed = serde_json::from_str(&reply)
                    .map_err(|e| SandboxError::Unavailable(format!("bad reply: {e}")));
                if parsed.is_ok() {
                    self.idle.lock().push(worker);
                }
                parsed
            }
            Ok(_) => Err(self.died(worker).await),
            Err(_elapsed) => {
                let _ = worker.child.start_kill();
                let _ = worker.child.wait().await;
                Err(SandboxError::Script(vec![limit(format!(
                    "time limit: the script ran longer than {} ms and was stopped",
                    self.config.time_limit.as_millis()
                ))]))
            }
        }
    }

    /// Names the limit a worker died of, from what it said on stderr.
    async fn died(&self, mut worker: Worker) -> SandboxError {
        let status = worker.child.wait().await;
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
        if started == 0 || ready.trim() != "ready" {
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

fn limit(message: String) -> Diagnostic {
    Diagnostic {
        message,
        line: 0,
        column: 0,
    }
}
