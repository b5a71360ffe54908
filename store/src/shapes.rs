//! The read queries of a shard, by shape, and their plans.
//!
//! Every multi-row read the store makes is one of these shapes; [`push_shape`] writes its
//! SQL, so that what runs and what [`Store::explain`] shows are the same text. The plans are
//! what proves that searches are served from indexes (a test asserts it at 100k resources).

use chrono::{DateTime, Utc};
use model::query::{Access, Query};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};

use crate::{Store, StoreError, sql};

/// A read query of one shard.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    /// A page of a search.
    Search(&'a Query),
    /// The count of a search's matches (`_total=accurate`).
    SearchCount(&'a Query),
    /// Current versions by key (`_include` targets, chained lookups).
    ReadMany {
        /// Resource types, one per key.
        types: &'a [&'a str],
        /// Ids, one per key.
        ids: &'a [&'a str],
        /// What the caller may see.
        access: &'a Access,
    },
    /// The targets of a reference parameter of some resources (`_include`).
    ReferencesFrom {
        /// The referring type.
        rtype: &'a str,
        /// The referring ids.
        ids: &'a [String],
        /// The reference parameter.
        param: &'a str,
        /// Only targets of this type, if given.
        target: Option<&'a str>,
    },
    /// The resources that point at some targets (`_revinclude`, `_has`).
    Referrers {
        /// The referring type.
        rtype: &'a str,
        /// The reference parameter.
        param: &'a str,
        /// The targets' type.
        target_type: &'a str,
        /// The targets' ids.
        targets: &'a [String],
        /// What the caller may see.
        access: &'a Access,
        /// At most this many rows.
        limit: usize,
    },
    /// A page of a patient's compartment (`Patient/$everything`).
    Compartment {
        /// The patient's id.
        patient: &'a str,
        /// Only these types, if given.
        types: Option<&'a [String]>,
        /// Only what changed since, if given.
        since: Option<DateTime<Utc>>,
        /// After this (type, id), in that order.
        after: Option<(&'a str, &'a str)>,
        /// Page size.
        count: usize,
        /// What the caller may see.
        access: &'a Access,
    },
}

/// Pushes a shape's SQL; `excluded` are the buckets whose copies on this shard belong to
/// another (see [`crate::layout::Layout::excluded`]).
pub(crate) fn push_shape(qb: &mut QueryBuilder<Postgres>, shape: &Shape<'_>, excluded: Vec<i32>) {
    match *shape {
        Shape::Search(query) => sql::push_search_page(qb, query, excluded),
        Shape::SearchCount(query) => sql::push_search_count(qb, query, excluded),
        Shape::ReadMany { types, ids, access } => {
            qb.push(
                "SELECT r.rtype, r.id, r.version, r.updated_at, r.body FROM resources r JOIN unnest(",
            )
            .push_bind(types.to_vec())
            .push("::text[], ")
            .push_bind(ids.to_vec())
            .push(
                "::text[]) AS k(rtype, id) ON r.rtype = k.rtype AND r.id = k.id WHERE NOT r.deleted",
            );
            sql::push_access(qb, access);
        }
        Shape::ReferencesFrom {
            rtype,
            ids,
            param,
            target,
        } => {
            qb.push("SELECT DISTINCT target_type, target_id FROM idx_reference WHERE rtype = ")
                .push_bind(rtype.to_owned())
                .push(" AND id = ANY(")
                .push_bind(ids.to_vec())
                .push(") AND param = ")
                .push_bind(param.to_owned());
            if let Some(t) = target {
                qb.push(" AND target_type = ").push_bind(t.to_owned());
            }
        }
        Shape::Referrers {
            rtype,
            param,
            target_type,
            targets,
            access,
            limit,
        } => {
            qb.push(
                "SELECT DISTINCT r.rtype, r.id, r.version, r.updated_at, r.body FROM idx_reference x \
                 JOIN resources r ON r.rtype = x.rtype AND r.id = x.id WHERE x.rtype = ",
            )
            .push_bind(rtype.to_owned())
            .push(" AND x.param = ")
            .push_bind(param.to_owned())
            .push(" AND x.target_type = ")
            .push_bind(target_type.to_owned())
            .push(" AND x.target_id = ANY(")
            .push_bind(targets.to_vec())
            .push(") AND NOT r.deleted");
            sql::push_access(qb, access);
            sql::push_owned(qb, "r.", excluded);
            qb.push(" ORDER BY r.id LIMIT ").push_bind(limit as i64);
        }
        Shape::Compartment {
            patient,
            types,
            since,
            after,
            count,
            access,
        } => {
            qb.push(
                "SELECT r.rtype, r.id, r.version, r.updated_at, r.body FROM resources r WHERE r.patient = ",
            )
            .push_bind(patient.to_owned())
            .push(" AND NOT r.deleted AND NOT (r.rtype = 'Patient' AND r.id = ")
            .push_bind(patient.to_owned())
            .push(")");
            if let Some(types) = types {
                qb.push(" AND r.rtype = ANY(")
                    .push_bind(types.to_vec())
                    .push(")");
            }
            if let Some(since) = since {
                qb.push(" AND r.updated_at >= ").push_bind(since);
            }
            if let Some((t, i)) = after {
                qb.push(" AND (r.rtype, r.id) > (")
                    .push_bind(t.to_owned())
                    .push(", ")
                    .push_bind(i.to_owned())
                    .push(")");
            }
            sql::push_access(qb, access);
            sql::push_owned(qb, "r.", excluded);
            qb.push(" ORDER BY r.rtype, r.id LIMIT ")
                .push_bind((count + 1) as i64);
        }
    }
}

/// Which plan [`Store::explain`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// The plan for these values, run (`EXPLAIN ANALYZE`): actual row counts per node.
    Analyzed,
    /// The generic plan of the prepared statement, which PostgreSQL may switch to after a
    /// few runs of the same statement (values unknown to the planner).
    Generic,
}

impl Store {
    /// The plan of a shape on one shard, as `EXPLAIN` prints it (one line per item), for
    /// tests and diagnosis. A generic plan is made by `PREPARE` under
    /// `plan_cache_mode = force_generic_plan`, whatever values the shape holds.
    pub async fn explain(
        &self,
        shard: usize,
        shape: &Shape<'_>,
        kind: PlanKind,
    ) -> Result<Vec<String>, StoreError> {
        if let Shape::Search(query) | Shape::SearchCount(query) = shape {
            sql::check_query(query)?;
        }
        let layout = self.layout();
        let excluded = layout.excluded(shard);
        let pool = self.pool(shard);
        let rows = match kind {
            PlanKind::Analyzed => {
                let mut qb = QueryBuilder::<Postgres>::new("EXPLAIN (ANALYZE, BUFFERS) ");
                push_shape(&mut qb, shape, excluded);
                qb.build().fetch_all(&pool).await?
            }
            PlanKind::Generic => {
                let mut qb = QueryBuilder::<Postgres>::new("");
                push_shape(&mut qb, shape, excluded);
                // The statement's own text, built from constants and `$n` placeholders only.
                let text = qb.sql().as_str().to_owned();
                let n_params = max_param(&text);
                let mut conn = pool.acquire().await?;
                let nulls = vec!["NULL"; n_params].join(", ");
                let explained = async {
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "SET plan_cache_mode = force_generic_plan; PREPARE fhirgate_explain AS {text}"
                    )))
                    .execute(&mut *conn)
                    .await?;
                    let rows = sqlx::query(AssertSqlSafe(if n_params > 0 {
                        format!("EXPLAIN EXECUTE fhirgate_explain({nulls})")
                    } else {
                        "EXPLAIN EXECUTE fhirgate_explain".to_owned()
                    }))
                    .fetch_all(&mut *conn)
                    .await?;
                    sqlx::raw_sql("DEALLOCATE fhirgate_explain; RESET plan_cache_mode")
                        .execute(&mut *conn)
                        .await?;
                    Ok::<_, sqlx::Error>(rows)
                }
                .await;
                if explained.is_err() {
                    // The session may keep the setting or the statement: not for reuse.
                    conn.close_on_drop();
                }
                explained?
            }
        };
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }
}

/// The highest `$n` placeholder in a statement.
fn max_param(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
            i += 1 + digits.len();
        } else {
            i += 1;
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::max_param;

    #[test]
    fn placeholders_are_counted() {
        assert_eq!(max_param("SELECT 1"), 0);
        assert_eq!(max_param("a = $1 AND b = $12 AND c = $3"), 12);
    }
}
