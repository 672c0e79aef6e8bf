//! The shell-word processor (`lex::Lexer`).

use super::super::lex::Lexer;
use super::strings;

const BS: Lexer = Lexer { escape: '\\' };
const BT: Lexer = Lexer { escape: '`' };

/// Environment: FOO=foo, EMPTY="", SPACED="a  b", PATHV=/usr/local/bin/app.tar.gz.
fn env(name: &str) -> Option<String> {
    match name {
        "FOO" => Some("foo".into()),
        "EMPTY" => Some(String::new()),
        "SPACED" => Some("a  b".into()),
        "PATHV" => Some("/usr/local/bin/app.tar.gz".into()),
        "_u1" => Some("under".into()),
        _ => None,
    }
}

fn word(l: &Lexer, w: &str) -> Result<String, String> {
    l.process_word(w, &env)
}

fn w(input: &str) -> String {
    match word(&BS, input) {
        Ok(s) => s,
        Err(e) => panic!("{input:?}: {e}"),
    }
}

fn words(input: &str) -> Vec<String> {
    match BS.process_words(input, &env) {
        Ok(v) => v,
        Err(e) => panic!("{input:?}: {e}"),
    }
}

#[test]
fn simple_variables() {
    assert_eq!(w("$FOO"), "foo");
    assert_eq!(w("${FOO}"), "foo");
    assert_eq!(w("a${FOO}b$FOO.c"), "afoobfoo.c");
    assert_eq!(w("$UNSET|${UNSET}|"), "||");
    assert_eq!(w("$_u1-x"), "under-x");
    assert_eq!(w("$FOObar"), "");
    assert_eq!(w("cost: $ 5 $"), "cost: $ 5 $");
    assert_eq!(w("$/x"), "$/x");
    assert_eq!(w("$1 $@"), " ");
}

#[test]
fn default_and_alternative_forms() {
    assert_eq!(w("${UNSET:-def}"), "def");
    assert_eq!(w("${EMPTY:-def}"), "def");
    assert_eq!(w("${FOO:-def}"), "foo");
    assert_eq!(w("${UNSET-def}"), "def");
    assert_eq!(w("${EMPTY-def}"), "");
    assert_eq!(w("${FOO-def}"), "foo");
    assert_eq!(w("${UNSET:+alt}"), "");
    assert_eq!(w("${EMPTY:+alt}"), "");
    assert_eq!(w("${FOO:+alt}"), "alt");
    assert_eq!(w("${UNSET+alt}"), "");
    assert_eq!(w("${EMPTY+alt}"), "alt");
    assert_eq!(w("${FOO+alt}"), "alt");
    assert_eq!(w("${UNSET:-}"), "");
}

#[test]
fn nested_defaults() {
    assert_eq!(w("${UNSET:-${FOO}}"), "foo");
    assert_eq!(w("${UNSET:-${ALSO:-deep $FOO}}"), "deep foo");
    assert_eq!(w("${FOO:+[${UNSET:-x}]}"), "[x]");
    assert_eq!(w("${UNSET:-'q}' \"$FOO\"}"), "q} foo");
    assert_eq!(w("${UNSET:-a\\}b}"), "a}b");
}

#[test]
fn required_forms() {
    assert_eq!(w("${FOO:?must}"), "foo");
    assert_eq!(w("${EMPTY?must}"), "");
    assert_eq!(
        word(&BS, "${UNSET:?must be set}"),
        Err("failed to process \"${UNSET:?must be set}\": UNSET: must be set".into())
    );
    assert_eq!(
        word(&BS, "${UNSET?}"),
        Err("failed to process \"${UNSET?}\": UNSET: is not allowed to be unset".into())
    );
    assert_eq!(
        word(&BS, "${EMPTY:?}"),
        Err("failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty".into())
    );
}

#[test]
fn pattern_forms() {
    assert_eq!(w("${PATHV#*/}"), "usr/local/bin/app.tar.gz");
    assert_eq!(w("${PATHV##*/}"), "app.tar.gz");
    assert_eq!(w("${PATHV%.*}"), "/usr/local/bin/app.tar");
    assert_eq!(w("${PATHV%%.*}"), "/usr/local/bin/app");
    assert_eq!(w("${PATHV#nomatch}"), "/usr/local/bin/app.tar.gz");
    assert_eq!(w("${PATHV%.t?r.gz}"), "/usr/local/bin/app");
    assert_eq!(w("${PATHV/local/opt}"), "/usr/opt/bin/app.tar.gz");
    assert_eq!(w("${PATHV//\\//_}"), "_usr_local_bin_app.tar.gz");
    assert_eq!(w("${PATHV/\\//}"), "usr/local/bin/app.tar.gz");
    assert_eq!(w("${PATHV/l*l/L}"), "/usr/L/bin/app.tar.gz");
    assert_eq!(w("${PATHV/#/x}"), "/usr/local/bin/app.tar.gz");
    assert_eq!(w("${UNSET#x}"), "");
    assert_eq!(w("${UNSET/x/y}"), "");
}

#[test]
fn syntax_errors() {
    let e = |s: &str| word(&BS, s).err().unwrap_or_default();
    assert!(e("${FOO").ends_with("syntax error: missing '}'"));
    assert!(e("${FOO:-x").ends_with("syntax error: missing '}'"));
    assert!(e("${").ends_with("syntax error: missing '}'"));
    assert!(e("${}").ends_with("syntax error: bad substitution"));
    assert!(e("${:-x}").ends_with("syntax error: bad substitution"));
    assert!(e("${{FOO}}").ends_with("syntax error: bad substitution"));
    assert!(e("${FOO:=x}").ends_with("unsupported modifier (:=) in substitution"));
    assert!(e("${FOO:1:2}").ends_with("unsupported modifier (:1) in substitution"));
    assert!(e("${FOO^^}").ends_with("unsupported modifier (^) in substitution"));
    assert!(e("${FOO/x").ends_with("syntax error: missing '/' in ${}"));
    assert!(e("${FOO/x/y").ends_with("syntax error: missing '}'"));
    assert!(
        e("'open").ends_with("unexpected end of statement while looking for matching single-quote")
    );
    assert!(e("\"open")
        .ends_with("unexpected end of statement while looking for matching double-quote"));
    assert!(e("\"open\\")
        .ends_with("unexpected end of statement while looking for matching double-quote"));
}

#[test]
fn quotes() {
    assert_eq!(w("'$FOO \"x\"'"), "$FOO \"x\"");
    assert_eq!(w("\"$FOO 'x'\""), "foo 'x'");
    assert_eq!(w("\"a\\\"b\\$FOO\\\\c\\n\""), "a\"b$FOO\\c\\n");
    assert_eq!(w("'a\\b'"), "a\\b");
    assert_eq!(w("x\"\"y''z"), "xyz");
    assert_eq!(w("  keep   spaces "), "  keep   spaces ");
}

#[test]
fn escapes_outside_quotes() {
    assert_eq!(w("\\$FOO"), "$FOO");
    assert_eq!(w("a\\ b\\\"c\\'d\\\\e\\x"), "a b\"c'd\\ex");
    assert_eq!(w("trailing\\"), "trailing");
    assert_eq!(w("\\${FOO}"), "${FOO}");
}

#[test]
fn backtick_escape() {
    assert_eq!(word(&BT, "C:\\path\\$FOO"), Ok("C:\\path\\foo".into()));
    assert_eq!(word(&BT, "`$FOO `\"q`\""), Ok("$FOO \"q\"".into()));
    assert_eq!(word(&BT, "\"a`\"b`$FOO``\""), Ok("a\"b$FOO`".into()));
    assert_eq!(BT.process_words("a` b c", &env), Ok(strings(&["a b", "c"])));
}

#[test]
fn word_splitting() {
    assert_eq!(words("  a  b\tc  "), strings(&["a", "b", "c"]));
    assert_eq!(
        words("x \"a  b\" 'c d' e\\ f"),
        strings(&["x", "a  b", "c d", "e f"])
    );
    assert_eq!(words("$SPACED end"), strings(&["a", "b", "end"]));
    assert_eq!(words("\"$SPACED\" end"), strings(&["a  b", "end"]));
    assert_eq!(words("pre$SPACED"), strings(&["prea", "b"]));
    assert_eq!(words("${UNSET:-x y} z"), strings(&["x", "y", "z"]));
    assert_eq!(words(""), Vec::<String>::new());
    assert_eq!(words("$UNSET"), Vec::<String>::new());
    assert_eq!(words("\"\" a"), strings(&["a"]));
}

#[test]
fn referenced_variables() {
    assert_eq!(
        BS.referenced("$A ${B} ${C:-$D} ${E:?boom} ${A}"),
        strings(&["A", "B", "C", "D", "E"])
    );
    assert_eq!(BS.referenced("'$NOT' \\$NOT2 \"$YES\""), strings(&["YES"]));
    assert_eq!(BS.referenced("$1 $@ $$ plain"), Vec::<String>::new());
    assert_eq!(
        BS.referenced("${X#*/} ${Y//a/$Z}"),
        strings(&["X", "Y", "Z"])
    );
    // Stops at a syntax error but keeps what it saw.
    assert_eq!(BS.referenced("$OK ${BAD"), strings(&["OK", "BAD"]));
    assert_eq!(BT.referenced("`$NO $YES"), strings(&["YES"]));
}

#[test]
fn default_lexer_uses_backslash() {
    assert_eq!(Lexer::default(), BS);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}x{}", "${A:-".repeat(5000), "}".repeat(5000));
    let e = BS.process_word(&deep, &env).err().unwrap_or_default();
    assert!(e.ends_with("substitutions nested too deeply"), "{e}");
    let ok = format!("{}x{}", "${A:-".repeat(100), "}".repeat(100));
    assert_eq!(w(&ok), "x");
    assert_eq!(BS.referenced(&deep), strings(&["A"]));
}
