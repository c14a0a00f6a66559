//! The `panorama` command's subcommands: each a small function that loads the project, calls
//! one library operation and prints what it returns. `flags` holds the command line's
//! definition; `main.rs` only parses it and dispatches here.

pub mod exports;
pub mod flags;
pub mod privacy;
pub mod project;
pub mod query;
pub mod run;
pub mod serve;
pub mod unify;

use std::path::PathBuf;

use panorama::config::ProjectConfig;
use panorama::error::Result;
use panorama::run::RunOptions;
use panorama::workspace::lock::Locking;

/// The global flags every subcommand may use.
pub struct Globals {
    /// `--project/-p` (or `PANORAMA_PROJECT`).
    pub project: PathBuf,
    /// `--quiet/-q`: no progress or summaries.
    pub quiet: bool,
    /// `--wait`: wait for another writer of the workspace instead of failing.
    pub locking: Locking,
}

impl Globals {
    /// The project's config, loaded and checked.
    pub fn config(&self) -> Result<ProjectConfig> {
        ProjectConfig::load(&self.project)
    }

    /// Options of a run or refresh as of `as_of` (default: the project's, else now).
    pub fn run_options(&self, as_of: Option<chrono::NaiveDateTime>) -> RunOptions {
        RunOptions {
            quiet: self.quiet,
            as_of,
            locking: self.locking.clone(),
            ..Default::default()
        }
    }
}
