//! The command line. No arguments: serve (a local server, or a Lambda function when
//! `AWS_LAMBDA_RUNTIME_API` is set). `summary [--date YYYY-MM-DD]`: the daily summary, once,
//! for hosts without the EventBridge schedule (cron).

use chrono::NaiveDate;

use crate::clock;

pub const USAGE: &str = "\
usage: ai-gateway                              serve: a local server on BIND, or a Lambda function
                                               when AWS_LAMBDA_RUNTIME_API is set
       ai-gateway summary [--date YYYY-MM-DD]  log and post (SUMMARY_WEBHOOK_URL) the daily summary
                                               of one UTC day, default yesterday; print it as JSON
       ai-gateway replay FILE.jsonl            estimate, offline, what a log of /v1/generate bodies
                                               costs with and without the gateway
       ai-gateway --help | --version";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    /// `None`: yesterday (UTC).
    Summary {
        day: Option<NaiveDate>,
    },
    /// `ai-gateway replay FILE.jsonl`.
    Replay {
        file: String,
    },
    Help,
    Version,
}

/// Parses the arguments after the program name; `Err` says what is wrong with them.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Ok(Command::Serve);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" => Ok(Command::Version),
        "replay" => match (args.next(), args.next()) {
            (Some(file), None) if !file.starts_with('-') => Ok(Command::Replay { file }),
            _ => Err("replay: give exactly one file, e.g. ai-gateway replay calls.jsonl".into()),
        },
        "summary" => {
            let mut day = None;
            while let Some(arg) = args.next() {
                let value = match arg.strip_prefix("--date=") {
                    Some(value) => value.to_string(),
                    None if arg == "--date" => args
                        .next()
                        .ok_or("--date needs a value: a UTC day as YYYY-MM-DD")?,
                    None => return Err(format!("summary: unexpected argument {arg:?}")),
                };
                if day.is_some() {
                    return Err("summary: --date given twice".into());
                }
                day = Some(clock::parse_day(&value).ok_or_else(|| {
                    format!("--date is {value:?}; accepted: a UTC day as YYYY-MM-DD")
                })?);
            }
            Ok(Command::Summary { day })
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn no_arguments_serve() {
        assert_eq!(parse_args(&[]), Ok(Command::Serve));
    }

    #[test]
    fn summary_takes_an_optional_day() {
        assert_eq!(parse_args(&["summary"]), Ok(Command::Summary { day: None }));
        let day = clock::parse_day("2026-12-02");
        assert_eq!(
            parse_args(&["summary", "--date", "2026-12-02"]),
            Ok(Command::Summary { day })
        );
        assert_eq!(
            parse_args(&["summary", "--date=2026-12-02"]),
            Ok(Command::Summary { day })
        );
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert!(
            parse_args(&["summary", "--date"])
                .unwrap_err()
                .contains("--date")
        );
        assert!(
            parse_args(&["summary", "--date", "yesterday"])
                .unwrap_err()
                .contains("yesterday")
        );
        assert!(
            parse_args(&["summary", "--days", "3"])
                .unwrap_err()
                .contains("--days")
        );
        assert!(parse_args(&["serve"]).unwrap_err().contains("serve"));
    }
}
