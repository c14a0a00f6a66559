//! Creating projects: `panorama init` writes a small, runnable starting point.

use std::path::Path;

use crate::config::CONFIG_FILE;
use crate::error::{Error, Result};

const STARTER_CONFIG: &str = r#"# Panorama project. Every key is documented in docs/config.md.
[project]
name = "my-project"

[workspace]
dir = ".panorama"   # runs are written here
keep_runs = 5       # completed runs kept for querying and rollback

# One table per source. Try `panorama run`, then `panorama query "SELECT * FROM customers"`.
[sources.customers]
location = "data/customers.csv"
format = "csv"
primary_key = "customer_id"
types = { signup_date = "date" }

# More examples:
# [sources.orders]
# location = "data/orders/*.parquet"
# primary_key = "order_id"
#
# [sources.loyalty_members]
# format = "postgres"
# location = "postgres://panorama:${PGPASSWORD}@localhost:5432/shop"
# table = "loyalty.members"
# primary_key = "member_id"
"#;

const STARTER_DATA: &str = "customer_id,first_name,last_name,email,signup_date
1,Jane,Doe,jane.doe@example.com,2024-03-01
2,Jon,Smith,jon.smith@example.com ,2024-05-17
3,JONATHAN,SMITH,,2025-01-09
";

/// Create a project in `dir` with a starter config and a tiny CSV. Refuses to overwrite.
pub fn init(dir: &Path) -> Result<()> {
    let config = dir.join(CONFIG_FILE);
    if config.exists() {
        return Err(Error::Conflict(format!(
            "{} already exists; not overwriting it",
            config.display()
        )));
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| Error::io("cannot create", &data, e))?;
    std::fs::write(&config, STARTER_CONFIG).map_err(|e| Error::io("cannot write", &config, e))?;
    let csv = data.join("customers.csv");
    if !csv.exists() {
        std::fs::write(&csv, STARTER_DATA).map_err(|e| Error::io("cannot write", &csv, e))?;
    }
    Ok(())
}
