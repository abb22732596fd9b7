//! The runner's command line, parsed the way `luajit` parses its own.

/// Something to do before the script, in command-line order.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// `-e chunk`
    Exec(String),
    /// `-l name`: `name = require'name'`
    Require(String),
    /// `-j cmd[=arg,...]`
    Jit(String),
    /// `-O[opt,...]`
    Optimize(String),
    /// `--luasocket`: `require'socketloop'.luasocket()`
    LuaSocket,
    /// `--copas`: `package.loaded.copas = require'socketloop.copas'`
    Copas,
}

/// Where the main script comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Script {
    File(String),
    Stdin,
}

/// A parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    pub actions: Vec<Action>,
    pub version: bool,
    /// `--help`: print the usage and exit.
    pub help: bool,
    pub script: Option<Script>,
    /// Index in argv of the script (argv.len() when there is none): `arg[0]`.
    pub script_index: usize,
    /// `--workers N`: the value, and the indices in argv of the option's words.
    pub workers: Option<String>,
    pub workers_words: Vec<usize>,
}

pub const USAGE: &str = "usage: socketloop [options]... [script [args]...]
Available options are:
  -e chunk  Execute string 'chunk'.
  -l name   Require library 'name'.
  -j cmd    Perform LuaJIT control command.
  -O[opt]   Control LuaJIT optimizations.
  --luasocket  Make require'socket' give socketloop.socket (LuaSocket's API on the loop).
  -v        Show version information.
  --workers N|auto  Run N worker processes (auto: one per core), each running the
                    script with its own loop; listening sockets get SO_REUSEPORT.
  --        Stop handling options.
  -         Execute stdin and stop handling options.
  --version Show socketloop's and LuaJIT's versions (as -v).
  --copas   Make require'copas' return socketloop.copas (copas programs run unchanged).
  --help    Show this help.";

/// Parses `argv` (argv[0] is the program). Errors name the offending option.
pub fn parse(argv: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation {
        script_index: argv.len(),
        ..Invocation::default()
    };
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a == "--luasocket" {
            inv.actions.push(Action::LuaSocket);
            i += 1;
            continue;
        }
        if a == "--" {
            i += 1;
            break;
        }
        if a == "--workers" || a.starts_with("--workers=") {
            let value = match a.strip_prefix("--workers=") {
                Some(v) => v.to_string(),
                None => {
                    inv.workers_words.push(i);
                    i += 1;
                    argv.get(i)
                        .cloned()
                        .ok_or_else(|| "'--workers' needs argument".to_string())?
                }
            };
            inv.workers_words.push(i);
            inv.workers = Some(value);
            i += 1;
            continue;
        }
        if a == "-" {
            inv.script = Some(Script::Stdin);
            inv.script_index = i;
            return Ok(inv);
        }
        if !a.starts_with('-') {
            break;
        }
        match a {
            "--version" => {
                inv.version = true;
                i += 1;
                continue;
            }
            "--help" => {
                inv.help = true;
                i += 1;
                continue;
            }
            "--copas" => {
                inv.actions.push(Action::Copas);
                i += 1;
                continue;
            }
            _ => {}
        }
        match &a[..2.min(a.len())] {
            "-v" if a.len() == 2 => inv.version = true,
            "-e" | "-l" | "-j" => {
                let value = if a.len() > 2 {
                    a[2..].to_string()
                } else {
                    i += 1;
                    argv.get(i)
                        .cloned()
                        .ok_or_else(|| format!("'{a}' needs argument"))?
                };
                inv.actions.push(match &a[..2] {
                    "-e" => Action::Exec(value),
                    "-l" => Action::Require(value),
                    _ => Action::Jit(value),
                });
            }
            "-O" => inv.actions.push(Action::Optimize(a[2..].to_string())),
            _ => return Err(format!("unrecognized option '{a}'")),
        }
        i += 1;
    }
    if i < argv.len() {
        inv.script = Some(Script::File(argv[i].clone()));
        inv.script_index = i;
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_then_script_then_args() {
        let inv = parse(&args("sl -e x=1 -lsocket -v a.lua p -e")).unwrap();
        assert_eq!(
            inv.actions,
            vec![Action::Exec("x=1".into()), Action::Require("socket".into())]
        );
        assert!(inv.version);
        assert_eq!(inv.script, Some(Script::File("a.lua".into())));
        assert_eq!(inv.script_index, 5);
    }

    #[test]
    fn stdin_and_double_dash() {
        let inv = parse(&args("sl - z")).unwrap();
        assert_eq!((inv.script, inv.script_index), (Some(Script::Stdin), 1));
        let inv = parse(&args("sl -- -odd.lua")).unwrap();
        assert_eq!(inv.script, Some(Script::File("-odd.lua".into())));
        let inv = parse(&args("sl -lx --luasocket a.lua --luasocket")).unwrap();
        assert_eq!(
            inv.actions,
            vec![Action::Require("x".into()), Action::LuaSocket]
        );
        assert_eq!(inv.script_index, 3);
    }

    #[test]
    fn workers_option() {
        let inv = parse(&args("sl --workers 2 -e x=1 s.lua a")).unwrap();
        assert_eq!(inv.workers.as_deref(), Some("2"));
        assert_eq!(inv.workers_words, vec![1, 2]);
        assert_eq!(inv.script, Some(Script::File("s.lua".into())));
        let inv = parse(&args("sl --workers=auto s.lua")).unwrap();
        assert_eq!(
            (inv.workers.as_deref(), inv.workers_words),
            (Some("auto"), vec![1])
        );
        assert_eq!(
            parse(&args("sl --workers")),
            Err("'--workers' needs argument".into())
        );
    }

    #[test]
    fn long_options() {
        let inv = parse(&args("sl --version --copas --help x.lua")).unwrap();
        assert!(inv.version && inv.help);
        assert_eq!(inv.actions, vec![Action::Copas]);
        assert_eq!(inv.script, Some(Script::File("x.lua".into())));
        assert_eq!(
            parse(&args("sl --nope")),
            Err("unrecognized option '--nope'".into())
        );
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(parse(&args("sl -e")), Err("'-e' needs argument".into()));
        assert_eq!(
            parse(&args("sl -i")),
            Err("unrecognized option '-i'".into())
        );
    }
}
