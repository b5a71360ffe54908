//! A typed search query over index entries: an AND of ORs of predicates, a page size and a
//! keyset cursor. Values are typed from parsing on; the store binds them into SQL.

/// A search over one entity source type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The source type searched (e.g. `Observation`).
    pub source_type: String,
    /// Every group must match; within a group, any predicate may.
    pub all_of: Vec<Vec<Predicate>>,
    /// Page size.
    pub count: usize,
    /// Return only entities whose id sorts after this one (keyset paging); with `sort`,
    /// the id of the last entity of the previous page, whose sort values are `after_sort`.
    pub after_id: Option<String>,
    /// The sort keys (`_sort`), most significant first; the id breaks ties. Empty: by id.
    pub sort: Vec<SortKey>,
    /// With `sort` and `after_id`: the sort values of the entity the cursor names, one per
    /// key (`None`: it had no value).
    pub after_sort: Vec<Option<SortValue>>,
    /// Whether to count all matches.
    pub total: bool,
    /// What the caller may see: the search returns, counts and pages nothing else.
    pub access: Access,
}

/// What a caller may see and change. Every restriction must hold; none means everything.
/// The store compiles it into the SQL of every read, search, history and write, so nothing
/// is filtered after paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Restrictions, all of which apply.
    pub all_of: Vec<Restriction>,
    /// Types a restricted caller sees although they sit in no patient's compartment
    /// (practitioners, organizations, definitions). A restricted caller sees no other
    /// resource outside a compartment.
    pub shared_types: Vec<String>,
}

impl Access {
    /// Everything (the default).
    pub fn everything() -> Access {
        Access::default()
    }

    /// Whether nothing is restricted.
    pub fn is_everything(&self) -> bool {
        self.all_of.is_empty()
    }
}

/// One restriction of what a caller may see, read from the data's own relationships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    /// The compartments of these patients (a SMART patient context).
    Patients(Vec<String>),
    /// The compartments of the patients whose `generalPractitioner` is this practitioner.
    GpOf(String),
    /// What this practitioner's grants reach: the Encounters they were referred to (a
    /// ServiceRequest with them as `performer`, which the Encounter is `basedOn`), take part
    /// in (`participant`), whose episode they manage (`EpisodeOfCare.careManager`) or are on
    /// the team of (`EpisodeOfCare.team` → `CareTeam.participant`), or whose care team they
    /// are on (`CareTeam.participant` with `CareTeam.encounter`); what hangs
    /// from those Encounters (an `encounter` reference); those EpisodesOfCare, referrals and
    /// care teams; and the Patient resources of the granted Encounters.
    GrantsOf(String),
    /// Resources of type `rtype` are visible only if one of `any_of` matches them (SMART
    /// granular scopes, `patient/Observation.rs?category=laboratory`); each filter is an AND
    /// of ORs of index predicates, like a search. Other types are not affected.
    Matching {
        /// The type the filters apply to.
        rtype: String,
        /// The filters, one per granting scope; one match suffices.
        any_of: Vec<Vec<Vec<Predicate>>>,
    },
}

/// How a range compares with the range searched for (FHIR's prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// The resource's range lies within the searched range.
    Eq,
    /// Not `Eq`.
    Ne,
    /// The resource's range starts before the searched range.
    Lt,
    /// The resource's range ends after the searched range.
    Gt,
    /// The resource's range starts at or before the searched range's end.
    Le,
    /// The resource's range ends at or after the searched range's start.
    Ge,
    /// The resource's range starts after the searched range.
    Sa,
    /// The resource's range ends before the searched range.
    Eb,
    /// The ranges overlap.
    Ap,
}

/// The kinds of index entries (one index table each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Codes and identifiers (and URIs).
    Token,
    /// Text.
    String,
    /// Dates.
    Date,
    /// References.
    Reference,
    /// Quantities and numbers.
    Quantity,
}

/// How a token's system must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    /// Any system (`code`).
    Any,
    /// No system (`|code`).
    None,
    /// This system (`system|code`).
    Is(String),
}

/// Which way a hierarchy search goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expand {
    /// The code and every code below it (`:below`).
    Below,
    /// The code and every code above it (`:above`).
    Above,
}

/// How a string must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMatch {
    /// Normalised value starts with the normalised search text (the default).
    StartsWith,
    /// Exact, case- and accent-sensitive equality (`:exact`).
    Exact,
    /// Normalised value contains the normalised search text (`:contains`).
    Contains,
}

/// One condition on an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// The entity's id is this one.
    Id(String),
    /// The entity's last update lies in a range (µs since the epoch, inclusive).
    LastUpdated {
        /// Comparison.
        prefix: Prefix,
        /// Start of the searched range.
        low: i64,
        /// End of the searched range.
        high: i64,
    },
    /// A token entry matches.
    Token {
        /// Parameter.
        param: String,
        /// System condition.
        system: SystemMatch,
        /// Code; `None` matches any code of the system (`system|`).
        code: Option<String>,
    },
    /// A token entry's code is one of `codes` (the hierarchy searches `:below` and
    /// `:above`). The parser gives only the searched code and what to expand; the caller
    /// that knows the code system fills `codes` and clears `expand`.
    TokenIn {
        /// Parameter.
        param: String,
        /// The code system.
        system: String,
        /// The codes that match.
        codes: Vec<String>,
        /// Hierarchy expansion still to do, if any.
        expand: Option<Expand>,
    },
    /// A string entry matches.
    String {
        /// Parameter.
        param: String,
        /// How.
        how: StringMatch,
        /// The text searched for (normalised unless `Exact`).
        value: String,
        /// The normalised text, which the index is keyed by (for an exact match, the
        /// index narrows by it and the exact text is then compared).
        normalized: String,
    },
    /// A date entry compares with a range.
    Date {
        /// Parameter.
        param: String,
        /// Comparison.
        prefix: Prefix,
        /// Start of the searched range.
        low: i64,
        /// End of the searched range.
        high: i64,
    },
    /// The resource has (`missing: false`) or has no (`missing: true`) index entry of a
    /// parameter (`:missing`).
    Missing {
        /// Parameter.
        param: String,
        /// Which kind of index entries the parameter has.
        kind: IndexKind,
        /// Whether the entries must be absent.
        missing: bool,
    },
    /// No token entry of the parameter matches (`:not`; a resource without any matches).
    NotToken {
        /// Parameter.
        param: String,
        /// System condition.
        system: SystemMatch,
        /// Code; `None` matches any code of the system.
        code: Option<String>,
    },
    /// A reference entry points at this target.
    Reference {
        /// Parameter.
        param: String,
        /// Target type, if the search names one.
        target_type: Option<String>,
        /// Target id.
        target_id: String,
    },
    /// A quantity or number entry compares with a range (the searched value's implicit
    /// precision range, or ±10 % of it for `ap`), with a unit condition.
    Quantity {
        /// Parameter.
        param: String,
        /// Comparison.
        prefix: Prefix,
        /// Start of the searched range, decimal text.
        low: String,
        /// End of the searched range, decimal text.
        high: String,
        /// The unit's system condition.
        system: SystemMatch,
        /// The unit's code (matched against the code, else the unit); `None`: any unit.
        code: Option<String>,
    },
}

/// One sort key of a search (`_sort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// What is compared.
    pub by: SortBy,
    /// Largest first (`-param`).
    pub descending: bool,
}

/// What a search sorts by. Entities without a value sort last either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortBy {
    /// The id.
    Id,
    /// The last update.
    LastUpdated,
    /// A parameter's index entries: the smallest value ascending, the largest descending
    /// (a date's `low` ascending and `high` descending; a string's normalised text, a
    /// token's code, a quantity's `low`, a reference's target id).
    Param {
        /// Parameter.
        param: String,
        /// Which index the parameter's entries are in.
        kind: IndexKind,
    },
}

/// A sort value of one entity, as the store compares it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SortValue {
    /// Text (strings, codes, ids), compared byte by byte.
    Text(String),
    /// An instant or a date bound, µs since the epoch.
    Micros(i64),
    /// A decimal number (plain notation), compared by value.
    Decimal(String),
}

impl SortValue {
    /// Compares two values of the same kind (values of different kinds by kind).
    pub fn compare(&self, other: &SortValue) -> std::cmp::Ordering {
        match (self, other) {
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
            (SortValue::Micros(a), SortValue::Micros(b)) => a.cmp(b),
            (SortValue::Decimal(a), SortValue::Decimal(b)) => compare_decimals(a, b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortValue::Text(_) => 0,
            SortValue::Micros(_) => 1,
            SortValue::Decimal(_) => 2,
        }
    }
}

/// Compares two decimals in plain notation (`-12.50`, `0.001`) by value, exactly.
pub fn compare_decimals(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn parts(s: &str) -> (bool, &str, &str) {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        // Negative zero is zero.
        (negative && !(int.is_empty() && frac.is_empty()), int, frac)
    }
    let (na, ia, fa) = parts(a);
    let (nb, ib, fb) = parts(b);
    let magnitude = ia
        .len()
        .cmp(&ib.len())
        .then_with(|| ia.cmp(ib))
        .then_with(|| fa.cmp(fb));
    match (na, nb) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// Where a sorted search's next page starts: the sort values and the id of the last entity
/// of the page before. Written into a `_cursor` as `~` and the hex of its JSON (`~` is in no
/// id, so a plain id cursor is told apart).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SortCursor {
    /// The sort values, one per key.
    pub values: Vec<Option<SortValue>>,
    /// The id.
    pub id: String,
}

impl SortCursor {
    /// The cursor's text.
    pub fn to_text(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let mut out = String::with_capacity(1 + 2 * json.len());
        out.push('~');
        for b in json.bytes() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Reads a cursor's text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<SortCursor> {
        let hex = text.strip_prefix('~')?.as_bytes();
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes = hex
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).ok()?;
                u8::from_str_radix(pair, 16).ok()
            })
            .collect::<Option<Vec<u8>>>()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Query {
    /// The `_cursor` text of where this query starts, if it starts after some entity.
    pub fn cursor_text(&self) -> Option<String> {
        let id = self.after_id.as_ref()?;
        if self.sort.is_empty() {
            Some(id.clone())
        } else {
            Some(
                SortCursor {
                    values: self.after_sort.clone(),
                    id: id.clone(),
                }
                .to_text(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn decimals_compare_by_value() {
        let cases = [
            ("1", "1.0", Equal),
            ("-0", "0.00", Equal),
            ("0.1", "0.10000000000000000001", Less),
            ("10", "9.99", Greater),
            ("-10", "-9.99", Less),
            ("-1", "0.5", Less),
            ("007.50", "7.5", Equal),
            ("+2", "1.999", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_decimals(a, b), want, "{a} {b}");
            assert_eq!(compare_decimals(b, a), want.reverse(), "{b} {a}");
        }
    }

    #[test]
    fn sort_cursors_round_trip() {
        let c = SortCursor {
            values: vec![
                Some(SortValue::Text("é,|&=".into())),
                None,
                Some(SortValue::Micros(-5)),
                Some(SortValue::Decimal("1.50".into())),
            ],
            id: "abc".into(),
        };
        let text = c.to_text();
        assert!(text.bytes().all(|b| b == b'~' || b.is_ascii_hexdigit()));
        assert_eq!(SortCursor::parse(&text), Some(c));
        for bad in ["abc", "~", "~0", "~zz", "~7b7d"] {
            assert_eq!(SortCursor::parse(bad), None, "{bad}");
        }
    }
}
