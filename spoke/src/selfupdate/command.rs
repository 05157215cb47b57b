//! Running external commands without a shell: splitting a command line into words, and running with a deadline.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a command line could not be split or a command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The command line is empty.
    #[error("the command line is empty")]
    Empty,
    /// A quote is not closed.
    #[error("unclosed {0} quote in command line {1:?}")]
    UnclosedQuote(char, String),
    /// The program could not be started.
    #[error("cannot run {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        message: String,
    },
    /// It ran past its deadline and was killed.
    #[error("{program} did not finish within {secs} s and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The deadline.
        secs: u64,
    },
    /// It exited unsuccessfully.
    #[error("{program} exited with {status}: {tail}")]
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// The last lines of its stderr (or stdout when stderr is empty).
        tail: String,
    },
}

/// Splits a command line into words like a POSIX shell would, without running one: whitespace separates words,
/// `'…'` is literal, `"…"` allows `\"` and `\\`, and a backslash outside quotes escapes the next character.
/// No variables, globs, pipes or redirections.
pub fn split_command(line: &str) -> Result<Vec<String>, CommandError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(CommandError::UnclosedQuote('\'', line.to_owned())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(CommandError::UnclosedQuote('"', line.to_owned())),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(CommandError::UnclosedQuote('"', line.to_owned())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err(CommandError::Empty);
    }
    Ok(words)
}

/// What a successful command printed.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) stdout: String,
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = v.len().saturating_sub(lines);
    let t = v[start..].join(" | ");
    if t.is_empty() {
        "(no output)".to_owned()
    } else {
        t
    }
}

/// Runs `argv` (no shell) with extra environment variables, stdin closed, output captured, killed at `timeout`.
pub(crate) fn run(
    argv: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output, CommandError> {
    let program = argv.first().cloned().ok_or(CommandError::Empty)?;
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| CommandError::Spawn {
        program: program.clone(),
        message: e.to_string(),
    })?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Timeout {
                    program,
                    secs: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(CommandError::Spawn {
                    program,
                    message: e.to_string(),
                });
            }
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if !status.success() {
        let text = if stderr.trim().is_empty() {
            &stdout
        } else {
            &stderr
        };
        return Err(CommandError::Failed {
            program,
            status: status.to_string(),
            tail: tail(text, 5),
        });
    }
    Ok(Output { stdout })
}
