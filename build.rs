//! Builds LuaJIT from `luajit-src` and links it into the runner and the tests only.
//!
//! The loadable module (`libsocketloop.so`) must use the host's LuaJIT, so nothing is linked
//! into the cdylib: mlua is built with its `module` feature everywhere, and the static
//! library is handed to the binaries and test targets through link arguments.
//! The `jit.*` helper modules (Lua files in the LuaJIT tree) and the Lua layer (`lua/`)
//! are listed for embedding, and the Lua test scripts (`tests/lua/*.lua`) for
//! `tests/lua_scripts.rs`, so a new module or test script needs no list edited by hand.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let artifacts = luajit_src::Build::new()
        .out_dir(out_dir.join("luajit"))
        .target(&env::var("TARGET").expect("TARGET is set by cargo"))
        .host(&env::var("HOST").expect("HOST is set by cargo"))
        .build();
    let lib = artifacts.lib_dir().join("libluajit.a");
    let lib = lib.display();

    for kind in ["bins", "tests"] {
        println!("cargo:rustc-link-arg-{kind}={lib}");
        println!("cargo:rustc-link-arg-{kind}=-lm");
        println!("cargo:rustc-link-arg-{kind}=-ldl");
    }
    // C modules (LuaSocket, cjson) resolve lua_* from the runner: export exactly the Lua API.
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=lua*");
    // The library's own unit tests are reached only through a link search path.
    println!(
        "cargo:rustc-link-search=native={}",
        artifacts.lib_dir().display()
    );

    embed_jit_modules(&out_dir);
    embed_lua_modules(&out_dir);
    list_lua_tests(&out_dir);
    println!("cargo:rerun-if-changed=build.rs");
}

/// Writes `jit_modules.rs`: a table of (module name, source) for LuaJIT's `jit/*.lua` files.
fn embed_jit_modules(out_dir: &Path) {
    let jit_dir = out_dir.join("luajit/luajit-build/src/jit");
    let mut entries: Vec<_> = fs::read_dir(&jit_dir)
        .expect("LuaJIT build tree has src/jit")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .filter(|p| {
            // Of the disassemblers, only the ones for this target (jit.dis_x64 needs dis_x86).
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            !name.starts_with("dis_") || name == "dis_x64" || name == "dis_x86"
        })
        .collect();
    entries.sort();
    let mut code = String::from("pub const JIT_MODULES: &[(&str, &str)] = &[\n");
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        writeln!(
            code,
            "    (\"jit.{stem}\", include_str!({:?})),",
            path.display()
        )
        .expect("write to String");
    }
    code.push_str("];\n");
    fs::write(out_dir.join("jit_modules.rs"), code).expect("write jit_modules.rs");
}

/// Every `.lua` file below `dir`, sorted, as paths relative to `dir`.
fn lua_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|x| x == "lua") {
                out.push(path.strip_prefix(root).expect("below root").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Writes `lua_modules.rs`: `(module name, file, source)` for every file under `lua/`;
/// `lua/socketloop/http/url.lua` is the module `socketloop.http.url`.
fn embed_lua_modules(out_dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lua_dir = root.join("lua");
    println!("cargo:rerun-if-changed={}", lua_dir.display());
    let mut code = String::from("pub const LUA_MODULES: &[(&str, &str, &str)] = &[\n");
    for rel in lua_files(&lua_dir) {
        let file = Path::new("lua").join(&rel);
        let name = rel
            .with_extension("")
            .to_str()
            .expect("utf-8 name")
            .replace('/', ".");
        println!("cargo:rerun-if-changed={}", root.join(&file).display());
        writeln!(
            code,
            "    ({name:?}, {:?}, include_str!({:?})),",
            file.display().to_string(),
            root.join(&file).display().to_string()
        )
        .expect("write to String");
    }
    code.push_str("];\n");
    fs::write(out_dir.join("lua_modules.rs"), code).expect("write lua_modules.rs");
}

/// Writes `lua_tests.rs`: one `lua_tests!` line with every script in `tests/lua/`
/// (support modules live in `tests/lua/lib/`).
fn list_lua_tests(out_dir: &Path) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).expect("tests/lua") {
        let path = entry.expect("directory entry").path();
        if path.is_file() && path.extension().is_some_and(|x| x == "lua") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 name");
            names.push(stem.to_string());
        }
    }
    names.sort();
    let code = format!("lua_tests!({});\n", names.join(", "));
    fs::write(out_dir.join("lua_tests.rs"), code).expect("write lua_tests.rs");
}
