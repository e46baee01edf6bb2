//! Running commands with their output shown and their failure explained.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Result;

/// A command to run from a directory, with extra environment variables.
pub(crate) struct Cmd<'a> {
    program: &'a str,
    args: Vec<String>,
    dir: &'a Path,
    envs: Vec<(String, String)>,
}

impl<'a> Cmd<'a> {
    pub(crate) fn new(program: &'a str, dir: &'a Path) -> Self {
        Self {
            program,
            args: Vec::new(),
            dir,
            envs: Vec::new(),
        }
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(self.program);
        command.args(&self.args).current_dir(self.dir);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    fn display(&self) -> String {
        let mut line = self.program.to_owned();
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }

    /// Runs the command with inherited output; fails when it does.
    pub(crate) fn run(&self) -> Result {
        println!("$ {}", self.display());
        let status = self
            .command()
            .status()
            .map_err(|err| format!("cannot run `{}`: {err}", self.program))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.display()))
        }
    }

    /// Runs the command quietly and returns its standard output, or `None` when it
    /// cannot be run or fails.
    pub(crate) fn read(&self) -> Option<String> {
        let output = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Prints a step header, so long outputs stay readable.
pub(crate) fn step(title: &str) {
    println!("\n==> {title}");
}
