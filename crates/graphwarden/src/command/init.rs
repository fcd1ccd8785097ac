//! `graphwarden init`: data directory, commented configuration, master key, database.

use std::path::Path;

use graphwarden_store::{Inventory, MasterKey, SqliteOptions, StoreError};

use crate::command::Context;
use crate::config;
use crate::exit::{self, CliError, CliResult};

pub async fn run(ctx: &Context) -> CliResult<u8> {
    let dir = &ctx.loaded.data_dir;
    let created_dir = create_private_dir(dir)?;
    let key_path = ctx.loaded.key_file();
    if key_path.exists() {
        return Err(StoreError::KeyExists { path: key_path }.into());
    }

    let config_path = dir.join("graphwarden.toml");
    let wrote_config = if config_path.exists() || ctx.loaded.config_file.is_some() {
        false
    } else {
        write_new(&config_path, config::initial_file())?;
        true
    };

    // The key goes to disk before the database learns of it: a key without a database is
    // harmless, a database whose key was never written is lost.
    let key = MasterKey::generate();
    key.write_new_file(&key_path)?;
    let mut options = ctx.open_options(key)?;
    options.sqlite = SqliteOptions {
        create: true,
        ..options.sqlite
    };
    if let Err(err) = Inventory::initialize(options).await {
        // When the database was never written (unreachable, bad URL, or it belongs to another
        // key), take the new key back so a retry starts clean. Otherwise keep it: the database
        // may already be sealed with it.
        if matches!(
            err,
            StoreError::AlreadyInitialized
                | StoreError::BadUrl { .. }
                | StoreError::Unavailable { .. }
        ) {
            let _ = std::fs::remove_file(&key_path);
            if wrote_config {
                let _ = std::fs::remove_file(&config_path);
            }
        }
        return Err(err.into());
    }

    if created_dir {
        println!("Created {} (mode 0700).", dir.display());
    } else {
        println!("Using the existing directory {}.", dir.display());
    }
    if wrote_config {
        println!(
            "Wrote {} with every setting commented out; `graphwarden config show` prints what is in effect.",
            config_path.display()
        );
    }
    println!(
        "Wrote the master key to {} (mode 0600). Back it up apart from the database: without it nothing stored can be read.",
        key_path.display()
    );
    println!(
        "Set up the inventory in {}.",
        graphwarden_store::redact_url(&ctx.loaded.database_url())
    );
    println!();
    println!("Next: register a Meta app, then store a token:");
    println!("  graphwarden app add APP_ID --name NAME --secret-file app-secret.txt");
    println!("  graphwarden token add ALIAS --app APP_ID --from-file token.txt");
    Ok(0)
}

/// Create `dir` with mode 0700 if it does not exist; `true` when it was created.
fn create_private_dir(dir: &Path) -> CliResult<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        CliError::new(
            exit::CANT_CREATE,
            format!("could not create the data directory {}: {e}", dir.display()),
        )
    })?;
    Ok(true)
}

fn write_new(path: &Path, content: &str) -> CliResult {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // The file may come to hold a database password.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        CliError::new(
            exit::CANT_CREATE,
            format!("could not create {}: {e}", path.display()),
        )
    })?;
    file.write_all(content.as_bytes())
        .map_err(|e| CliError::new(exit::IO, format!("could not write {}: {e}", path.display())))?;
    Ok(())
}
