use super::*;

const T0: u64 = 1_795_947_072_123_456_789;
const T0_TEXT: &str = "2026-11-29T10:11:12.123456789Z";

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read log")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn writes_full_and_partial_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ctr.log");
    let mut log = LogWriter::open(&path, 0).expect("open");
    log.write_at(Stream::Stdout, b"hello\n\nwor", T0)
        .expect("write");
    log.write_at(Stream::Stderr, b"oops\n", T0).expect("write");
    log.write_at(Stream::Stdout, b"ld\n", T0 + 1)
        .expect("write");
    assert_eq!(
        lines(&path),
        [
            format!("{T0_TEXT} stdout F hello"),
            format!("{T0_TEXT} stdout F "),
            format!("{T0_TEXT} stdout P wor"),
            format!("{T0_TEXT} stderr F oops"),
            "2026-11-29T10:11:12.123456790Z stdout F ld".to_owned(),
        ]
    );
}

#[test]
fn long_lines_are_split_into_partial_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ctr.log");
    let mut log = LogWriter::open(&path, 0).expect("open");
    let mut line = vec![b'x'; MAX_RECORD_CONTENT * 2 + 10];
    line.push(b'\n');
    log.write_at(Stream::Stdout, &line, T0).expect("write");
    let records = read_log(&path).expect("read");
    let shape: Vec<(bool, usize)> = records
        .iter()
        .map(|r| (r.partial, r.content.len()))
        .collect();
    assert_eq!(
        shape,
        [
            (true, MAX_RECORD_CONTENT),
            (true, MAX_RECORD_CONTENT),
            (false, 10)
        ]
    );
    let joined = join_partials(records);
    assert_eq!(joined.len(), 1);
    assert!(!joined[0].partial);
    assert_eq!(joined[0].content, &line[..line.len() - 1]);
}

#[test]
fn parses_what_it_writes_and_rejects_other_lines() {
    let record = parse_line(format!("{T0_TEXT} stderr P a b  c\n").as_bytes()).expect("record");
    assert_eq!(
        record,
        LogRecord {
            time: T0_TEXT.to_owned(),
            unix_nanos: T0,
            stream: Stream::Stderr,
            partial: true,
            content: b"a b  c".to_vec(),
        }
    );
    let empty = parse_line(format!("{T0_TEXT} stdout F").as_bytes()).expect("empty content");
    assert!(empty.content.is_empty());
    for bad in [
        "".to_owned(),
        "hello world".to_owned(),
        format!("{T0_TEXT} stdin F x"),
        format!("{T0_TEXT} stdout X x"),
        "yesterday stdout F x".to_owned(),
    ] {
        assert_eq!(parse_line(bad.as_bytes()), None, "{bad:?}");
    }
}

#[test]
fn rotates_at_the_size_limit_and_reads_both_files_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ctr.log");
    // Each record "<30-byte time> stdout F lineN\n" is 46 bytes; three fit in 150.
    let mut log = LogWriter::open(&path, 150).expect("open");
    for i in 0..8 {
        log.write_at(Stream::Stdout, format!("line{i}\n").as_bytes(), T0)
            .expect("write");
    }
    let current = std::fs::metadata(&path).expect("log").len();
    let rotated = std::fs::metadata(rotated_path(&path)).expect("log.1").len();
    assert!(current <= 150 && rotated <= 150, "{current} {rotated}");
    let contents: Vec<String> = read_log(&path)
        .expect("read")
        .into_iter()
        .map(|r| String::from_utf8(r.content).expect("utf8"))
        .collect();
    // 8 records, 3 per file: line0-2 were rotated away twice, so .1 holds 3-5 and the log 6-7.
    assert_eq!(contents, ["line3", "line4", "line5", "line6", "line7"]);
}

#[test]
fn a_chunk_larger_than_the_limit_still_rotates_per_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ctr.log");
    // 41-byte records and a 50-byte limit: every record starts a new file.
    let mut log = LogWriter::open(&path, 50).expect("open");
    log.write_at(Stream::Stderr, b"a\nb\nc\n", T0)
        .expect("write");
    assert_eq!(
        lines(&rotated_path(&path)),
        [format!("{T0_TEXT} stderr F b")]
    );
    assert_eq!(lines(&path), [format!("{T0_TEXT} stderr F c")]);
}

#[test]
fn appends_to_an_existing_log_and_counts_its_size() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ctr.log");
    LogWriter::open(&path, 0)
        .expect("open")
        .write_at(Stream::Stdout, b"first\n", T0)
        .expect("write");
    let mut log = LogWriter::open(&path, 90).expect("reopen");
    log.write_at(Stream::Stdout, b"second\n", T0)
        .expect("write");
    assert_eq!(
        lines(&rotated_path(&path)),
        [format!("{T0_TEXT} stdout F first")]
    );
    assert_eq!(lines(&path), [format!("{T0_TEXT} stdout F second")]);
}

#[test]
fn reading_skips_an_unfinished_last_line_and_missing_logs_are_not_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ctr.log");
    let err = read_log(&path).expect_err("no log yet");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    std::fs::write(
        &path,
        format!("{T0_TEXT} stdout F done\ngarbage\n{T0_TEXT} stdout F half"),
    )
    .expect("write");
    let records = read_log(&path).expect("read");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].content, b"done");
}

#[test]
fn joins_partials_per_stream() {
    let rec = |stream, partial, content: &str, t| LogRecord {
        time: timestamp::format_rfc3339_nanos(t),
        unix_nanos: t,
        stream,
        partial,
        content: content.as_bytes().to_vec(),
    };
    let joined = join_partials(vec![
        rec(Stream::Stdout, true, "hel", 1),
        rec(Stream::Stderr, false, "warn", 2),
        rec(Stream::Stdout, false, "lo", 3),
        rec(Stream::Stderr, true, "unfinished", 4),
    ]);
    assert_eq!(
        joined,
        vec![
            rec(Stream::Stderr, false, "warn", 2),
            rec(Stream::Stdout, false, "hello", 1),
            rec(Stream::Stderr, true, "unfinished", 4),
        ]
    );
}
