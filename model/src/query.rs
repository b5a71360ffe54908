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
    /// Return only entities whose id sorts after this one (keyset paging).
    pub after_id: Option<String>,
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
