//! `graphwarden config show`.

use crate::cli::ConfigCommand;
use crate::command::Context;
use crate::config::EXAMPLE;
use crate::exit::CliResult;
use crate::output;

pub fn run(ctx: &Context, command: ConfigCommand) -> CliResult<u8> {
    match command {
        ConfigCommand::Example => print!("{EXAMPLE}"),
        ConfigCommand::Show { json } => {
            let settings = ctx.loaded.settings();
            if json {
                output::print_json(&settings)?;
            } else {
                match &ctx.loaded.config_file {
                    Some(file) => println!("# configuration file: {}", file.display()),
                    None => println!("# configuration file: none (defaults and environment only)"),
                }
                println!("# secrets are redacted; each value's source is on its right");
                let mut table = output::table(&["SETTING", "VALUE", "SOURCE"]);
                for s in settings {
                    table.add_row(vec![s.key, s.value.to_string(), s.source]);
                }
                output::print_table(&table);
            }
        }
    }
    Ok(0)
}
