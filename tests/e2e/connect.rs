//! PROTOCOL.md section 1, Connecting: how the space, `identity` and `id`
//! are read from the URL, their limits, and the order of the join checks.

use anyhow::{ensure, Context, Result};
use longhouse_e2e::client::is_lowercase_uuid_v4;
use longhouse_e2e::{unique, Client, Ctx};

use crate::support::{connect_raw, expect_all_silent, ids, join_raw};

/// `/a%2Fb` and `/a/b` are the same space.
pub async fn encoded_slash_and_slash_are_the_same_space(cx: &Ctx) -> Result<()> {
    let p = cx.space();
    let mut a = join_raw(cx, &format!("/{p}a%2Fb?identity=a")).await?;
    let b = join_raw(cx, &format!("/{p}a/b?identity=b")).await?;
    ensure!(
        ids(&b.roster) == ids(&[a.member(), b.member()]),
        "/a/b and /a%2Fb should be one space; welcome of /a/b: {:?}",
        b.roster
    );
    a.expect_join(&b.member()).await?;
    // And a third spelling through the encoder (which encodes `/`).
    let c = cx.join(&format!("{p}a/b"), "c").await?;
    ensure!(c.roster.len() == 3, "space {p}a/b: {:?}", c.roster);
    Ok(())
}

/// `+` in the path is a `+`, not a space.
pub async fn plus_in_path_stays_plus(cx: &Ctx) -> Result<()> {
    let p = cx.space();
    let mut a = join_raw(cx, &format!("/{p}x+y?identity=a")).await?;
    let mut b = join_raw(cx, &format!("/{p}x%2By?identity=b")).await?;
    ensure!(
        b.roster.contains(&a.member()),
        "/x+y and /x%2By should be one space; welcome: {:?}",
        b.roster
    );
    a.expect_join(&b.member()).await?;
    let c = join_raw(cx, &format!("/{p}x%20y?identity=c")).await?;
    ensure!(
        c.roster == vec![c.member()],
        "/x%20y (a space character) must not be the space x+y; welcome: {:?}",
        c.roster
    );
    expect_all_silent(&mut [&mut a, &mut b]).await
}

/// `%25` decodes to `%` and nothing is decoded twice: `/x%2541` is the
/// space `x%41`, not `xA`.
pub async fn path_is_percent_decoded_exactly_once(cx: &Ctx) -> Result<()> {
    let p = cx.space();
    let mut a = join_raw(cx, &format!("/{p}x%2541?identity=a")).await?;
    ensure!(a.roster.len() == 1, "fresh space: {:?}", a.roster);
    let mut b = join_raw(cx, &format!("/{p}x%41?identity=b")).await?;
    ensure!(
        b.roster == vec![b.member()],
        "/x%41 (space xA) met /x%2541 (space x%41): {:?}",
        b.roster
    );
    let c = join_raw(cx, &format!("/{p}xA?identity=c")).await?;
    ensure!(
        c.roster.contains(&b.member()) && c.roster.len() == 2,
        "/xA and /x%41 should be one space: {:?}",
        c.roster
    );
    b.expect_join(&c.member()).await?;
    let d = cx.join(&format!("{p}x%41"), "d").await?;
    ensure!(
        d.roster.contains(&a.member()) && d.roster.len() == 2,
        "the space named x%41 should be /x%2541: {:?}",
        d.roster
    );
    a.expect_join(&d.member()).await?;
    expect_all_silent(&mut [&mut a, &mut b]).await
}

/// A malformed `%` sequence in the path: `Invalid…`, close 1008.
pub async fn malformed_percent_in_path_is_invalid(cx: &Ctx) -> Result<()> {
    let p = cx.space();
    for bad in ["%zz", "%", "%4", "%g1", "a%2"] {
        let mut c = connect_raw(cx, &format!("/{p}{bad}?identity=a")).await?;
        c.expect_rejected("Invalid", 1008)
            .await
            .with_context(|| format!("path /{p}{bad}"))?;
    }
    Ok(())
}

/// A `%` sequence that decodes to bytes that are not UTF-8 is no space.
pub async fn path_decoding_to_invalid_utf8_is_invalid(cx: &Ctx) -> Result<()> {
    let p = cx.space();
    for bad in ["%FF", "%C3", "%C3%28", "%ED%A0%80"] {
        let mut c = connect_raw(cx, &format!("/{p}{bad}?identity=a")).await?;
        c.expect_rejected("Invalid", 1008)
            .await
            .with_context(|| format!("path /{p}{bad}"))?;
    }
    Ok(())
}

/// Query values as `URLSearchParams`: `+` is a space, `%2B` is a `+`.
pub async fn query_plus_is_a_space_and_percent_2b_is_plus(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    for (query, identity) in [
        ("identity=a+b", "a b"),
        ("identity=a%2Bb", "a+b"),
        ("identity=%2B+%2B", "+ +"),
        ("identity=a%20b%2b", "a b+"),
    ] {
        let c = join_raw(cx, &format!("/{space}?{query}")).await?;
        ensure!(
            c.identity == identity,
            "?{query}: identity {:?}, expected {identity:?}",
            c.identity
        );
        let seen = observer.expect_event("remote join").await?;
        ensure!(
            seen.identity == identity,
            "?{query}: others see identity {:?}, expected {identity:?}",
            seen.identity
        );
    }
    Ok(())
}

/// The first of repeated parameters wins.
pub async fn query_first_repeated_parameter_wins(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let c = join_raw(cx, &format!("/{space}?identity=first&identity=second")).await?;
    ensure!(
        c.identity == "first",
        "identity=first&identity=second gave {:?}",
        c.identity
    );
    let (id1, id2) = (unique("first"), unique("second"));
    let d = join_raw(cx, &format!("/{space}?id={id1}&identity=x&id={id2}")).await?;
    ensure!(d.id == id1, "id={id1}&…&id={id2} gave id {:?}", d.id);
    Ok(())
}

/// Unknown parameters are ignored.
pub async fn query_unknown_parameters_are_ignored(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let c = join_raw(
        cx,
        &format!("/{space}?foo=bar&identity=alice&flag&Identity=bob&ids=x.y&z="),
    )
    .await?;
    ensure!(c.identity == "alice", "identity {:?}", c.identity);
    ensure!(
        is_lowercase_uuid_v4(&c.id),
        "ids= is not id=; got id {:?}",
        c.id
    );
    Ok(())
}

/// An empty value is the same as an absent one.
pub async fn query_empty_value_is_the_same_as_absent(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let mut c = connect_raw(cx, &format!("/{space}?identity=")).await?;
    c.expect_rejected("No identity parameter was supplied", 1008)
        .await
        .context("identity=")?;
    let d = join_raw(cx, &format!("/{space}?identity=dora&id=")).await?;
    ensure!(
        is_lowercase_uuid_v4(&d.id),
        "id= should be no id (a fresh UUID), got {:?}",
        d.id
    );
    observer.expect_join(&d.member()).await?;
    Ok(())
}

/// Identities that broke the old implementation come back unchanged, to the
/// client itself and to everyone else. Only Cc characters are excluded, so
/// format and separator characters are fine too.
pub async fn identity_characters_round_trip_exactly(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let identities = [
        "a|b",
        "*",
        "a*b",
        "[x]",
        "a/b",
        "%41",
        "%",
        "%zz",
        "mailto:a@example.com",
        "a:b:c",
        "Zoë 🦀",
        "日本語",
        "e\u{301}",
        "a+b c",
        "a&b=c;d",
        "?#",
        "~!$'()",
        "\"quoted\" \\",
        " padded ",
        "zero\u{200b}width",
        "nb\u{a0}sp",
        "line\u{2028}sep",
    ];
    let mut clients = Vec::new();
    for identity in identities {
        let c = cx
            .join(&space, identity)
            .await
            .with_context(|| format!("identity {identity:?}"))?;
        observer
            .expect_join(&c.member())
            .await
            .with_context(|| format!("identity {identity:?}"))?;
        clients.push(c);
    }
    let last = cx.join(&space, "last").await?;
    for c in &clients {
        ensure!(
            last.roster.contains(&c.member()),
            "welcome lacks {} exactly: {:?}",
            c.member(),
            last.roster
        );
    }
    Ok(())
}

/// Spaces whose names the old implementation mangled (glob characters,
/// separators, `%`, non-ASCII) are exactly themselves: nothing crosses to a
/// similar-looking space.
pub async fn space_characters_are_kept_exactly(cx: &Ctx) -> Result<()> {
    let pairs = [
        ("*", "x"),
        ("a*", "ab"),
        ("[x]", "x"),
        ("a|b", "a"),
        ("a:b", "a"),
        ("a/b", "a"),
        ("%41", "A"),
        ("Zoë 🦀", "Zoe 🦀"),
        ("a b", "a+b"),
        ("?", ""),
    ];
    let mut others = Vec::new();
    for (this, other) in pairs {
        // A fresh prefix per pair: several pairs share an `other`.
        let p = cx.space();
        let (s1, s2) = (format!("{p}{this}"), format!("{p}{other}"));
        let mut a = cx.join(&s1, "a").await?;
        let b = cx.join(&s2, "b").await?;
        ensure!(
            b.roster == vec![b.member()],
            "space {s2:?} met {s1:?}: {:?}",
            b.roster
        );
        let c = cx.join(&s1, "c").await?;
        ensure!(
            ids(&c.roster) == ids(&[a.member(), c.member()]),
            "space {s1:?} should hold a and c: {:?}",
            c.roster
        );
        a.expect_join(&c.member())
            .await
            .with_context(|| format!("space {s1:?}"))?;
        others.push(b);
    }
    let mut refs: Vec<&mut Client> = others.iter_mut().collect();
    expect_all_silent(&mut refs).await
}

/// A space is 1 to 128 characters (Unicode scalar values, not bytes).
pub async fn space_of_128_characters_ok_129_invalid(cx: &Ctx) -> Result<()> {
    let tag = unique("s");
    let pad = |c: char, n: usize| -> String {
        let mut s = tag.clone();
        while s.chars().count() < n {
            s.push(c);
        }
        s
    };
    for c in ['x', 'ë', '🦀'] {
        let space = pad(c, 128);
        let a = cx
            .join(&space, "a")
            .await
            .with_context(|| format!("128 characters of {c:?}"))?;
        let b = cx.join(&space, "b").await?;
        ensure!(
            b.roster.contains(&a.member()),
            "a 128-character space is one space: {:?}",
            b.roster
        );
        let mut bad = cx.connect(&pad(c, 129), Some("a"), None).await?;
        bad.expect_rejected("Invalid", 1008)
            .await
            .with_context(|| format!("129 characters of {c:?}"))?;
    }
    Ok(())
}

/// An identity is 1 to 256 characters.
pub async fn identity_of_256_characters_ok_257_invalid(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    for c in ['i', 'ë', '🦀'] {
        let identity: String = std::iter::repeat_n(c, 256).collect();
        let a = cx
            .join(&space, &identity)
            .await
            .with_context(|| format!("256 characters of {c:?}"))?;
        observer.expect_join(&a.member()).await?;
        let too_long: String = std::iter::repeat_n(c, 257).collect();
        let mut bad = cx.connect(&space, Some(&too_long), None).await?;
        bad.expect_rejected("Invalid", 1008)
            .await
            .with_context(|| format!("257 characters of {c:?}"))?;
    }
    observer.expect_silence().await
}

/// Control characters (Cc: C0 including TAB, DEL, C1) make a space or an
/// identity invalid; nobody in the space sees the attempt.
pub async fn control_characters_are_invalid(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let controls = [
        "\t", "\u{7f}", "\u{85}", "\0", "\n", "\r", "\u{1b}", "\u{9f}",
    ];
    for ctl in controls {
        let mut bad = cx
            .connect(&format!("{space}{ctl}"), Some("a"), None)
            .await?;
        bad.expect_rejected("Invalid", 1008)
            .await
            .with_context(|| format!("space with {ctl:?}"))?;
        let mut bad = cx.connect(&space, Some(&format!("a{ctl}b")), None).await?;
        bad.expect_rejected("Invalid", 1008)
            .await
            .with_context(|| format!("identity with {ctl:?}"))?;
    }
    observer.expect_silence().await
}

/// An id is 1 to 64 characters of `A-Z a-z 0-9 - _`.
pub async fn id_of_64_allowed_characters_ok_else_invalid(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let mut id64: String = "AZaz09-_".repeat(6);
    id64.push_str(&uuid::Uuid::new_v4().simple().to_string()[..16]);
    assert_eq!(id64.len(), 64);
    for id in [id64.as_str(), "-", "_", "Q"] {
        let c = cx.join_with_id(&space, "a", id).await?;
        ensure!(c.id == id, "joined with id {id:?}, welcome says {:?}", c.id);
        observer.expect_join(&c.member()).await?;
    }
    let id65 = format!("{id64}x");
    for id in [
        id65.as_str(),
        "a.b",
        "a b",
        "é",
        "a+b",
        "a/b",
        "a%b",
        "a~b",
        "a:b",
        "a\tb",
    ] {
        let mut bad = cx.connect(&space, Some("a"), Some(id)).await?;
        bad.expect_rejected("Invalid", 1008)
            .await
            .with_context(|| format!("id {id:?}"))?;
    }
    observer.expect_silence().await
}

/// Join checks run in the order space, identity, id: the first failing one
/// is the one reported.
pub async fn join_checks_run_space_then_identity_then_id(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let too_long_space = "s".repeat(129);
    let too_long_identity = "i".repeat(257);
    let cases = [
        // no space beats everything
        ("/".to_string(), "Space ID is required"),
        ("/?id=a.b".to_string(), "Space ID is required"),
        (
            format!("/?identity={too_long_identity}&id=a.b"),
            "Space ID is required",
        ),
        // a bad space beats a missing identity
        (format!("/{too_long_space}"), "Invalid"),
        (format!("/{space}%zz?id=ok"), "Invalid"),
        // a missing identity beats a bad id
        (
            format!("/{space}?id=a.b"),
            "No identity parameter was supplied",
        ),
        (
            format!("/{space}?id=%09"),
            "No identity parameter was supplied",
        ),
    ];
    for (path, expected) in cases {
        let mut c = connect_raw(cx, &path).await?;
        c.expect_rejected(expected, 1008)
            .await
            .with_context(|| format!("path {path}"))?;
    }
    Ok(())
}

/// A bad join stores nothing: the id it asked for is still free, and nobody
/// in the space sees anything of it.
pub async fn bad_join_stores_nothing_and_nobody_sees_it(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let id = unique("wanted");
    let mut bad = cx
        .connect(&space, Some(&"i".repeat(257)), Some(&id))
        .await?;
    bad.expect_rejected("Invalid", 1008).await?;
    let mut bad = cx.connect(&space, Some("a\u{7f}"), Some(&id)).await?;
    bad.expect_rejected("Invalid", 1008).await?;
    observer.expect_silence().await?;
    let c = cx.join_with_id(&space, "someone else", &id).await?;
    ensure!(c.id == id, "the id should be free: got {:?}", c.id);
    ensure!(
        ids(&c.roster) == ids(&[observer.member(), c.member()]),
        "roster: {:?}",
        c.roster
    );
    observer.expect_join(&c.member()).await
}
