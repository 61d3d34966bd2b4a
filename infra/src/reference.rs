//! Reference data: units, categories with their deadline policies, the working calendar.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use domain::{CategoryId, DeadlinePolicy, PolicySource, Tier, UnitId, UnitKind, WorkingCalendar};
use tokio::sync::RwLock;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;

/// A unit of the organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Id.
    pub id: UnitId,
    /// Name, e.g. 青山村.
    pub name: String,
    /// Kind.
    pub kind: UnitKind,
    /// The unit above it.
    pub parent_id: Option<UnitId>,
    /// Whether cases may be routed to it.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Unit {
    fn from_row(r: &Row) -> Self {
        Self {
            id: UnitId::from_uuid(r.get("id")),
            name: r.get("name"),
            kind: UnitKind::parse(r.get("kind")).unwrap_or(UnitKind::Department),
            parent_id: r.get::<_, Option<Uuid>>("parent_id").map(UnitId::from_uuid),
            active: r.get("active"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        }
    }
}

/// A category of the taxonomy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// Id.
    pub id: CategoryId,
    /// A short stable code, e.g. `welfare.dibao`.
    pub code: String,
    /// Name, e.g. 低保评定.
    pub name: String,
    /// The kind of case it is for, if only one.
    pub kind: Option<String>,
    /// Where its cases usually go.
    pub default_unit_id: Option<UnitId>,
    /// Its time limits.
    pub policy: DeadlinePolicy,
    /// Whether it can be chosen.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// The extra fields its cases ask for (Open311 attribute definitions, as the API checked
    /// them); `[]` for none.
    pub attributes: serde_json::Value,
}

impl Category {
    fn from_row(r: &Row) -> Result<Self, StoreError> {
        let id = CategoryId::from_uuid(r.get("id"));
        let mut policy: DeadlinePolicy = serde_json::from_value(r.get("policy"))
            .map_err(|_| StoreError::Vault("a stored deadline policy does not parse"))?;
        policy.source = PolicySource::Category(id);
        Ok(Self {
            id,
            code: r.get("code"),
            name: r.get("name"),
            kind: r.get("kind"),
            default_unit_id: r.get::<_, Option<Uuid>>("default_unit_id").map(UnitId::from_uuid),
            policy,
            active: r.get("active"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            attributes: r.get("attributes"),
        })
    }
}

/// The fields of a new or changed category.
#[derive(Debug, Clone)]
pub struct CategoryInput {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Option<String>,
    /// Default unit.
    pub default_unit_id: Option<UnitId>,
    /// Policy.
    pub policy: DeadlinePolicy,
    /// Active.
    pub active: bool,
}

/// A routing rule (归口): where a case of a category (from a village) goes by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRule {
    /// Id.
    pub id: Uuid,
    /// The category.
    pub category_id: CategoryId,
    /// The village it applies to; none for the category-wide rule.
    pub village_id: Option<UnitId>,
    /// The unit cases go to.
    pub unit_id: UnitId,
    /// The tier of that unit.
    pub tier: Tier,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
}

impl RoutingRule {
    fn from_row(r: &Row) -> Self {
        Self {
            id: r.get("id"),
            category_id: CategoryId::from_uuid(r.get("category_id")),
            village_id: r.get::<_, Option<Uuid>>("village_id").map(UnitId::from_uuid),
            unit_id: UnitId::from_uuid(r.get("unit_id")),
            tier: if r.get::<_, String>("tier") == "village" { Tier::Village } else { Tier::Town },
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        }
    }
}

/// The tier a unit sits at: villages, farms and communities are the village tier; the town and
/// its departments the town tier.
pub fn tier_of(kind: UnitKind) -> Tier {
    match kind {
        UnitKind::Village | UnitKind::Farm | UnitKind::Community => Tier::Village,
        UnitKind::Town | UnitKind::Department => Tier::Town,
    }
}

/// Where a routing proposal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSource {
    /// A rule for the category and the case's village.
    VillageRule,
    /// The category-wide rule.
    CategoryRule,
    /// The category's default unit (tier from the unit's kind).
    CategoryDefault,
}

/// A proposed route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The unit.
    pub unit_id: UnitId,
    /// Its tier.
    pub tier: Tier,
    /// Why.
    pub source: RouteSource,
}

/// One exceptional day of the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    /// The date.
    pub day: NaiveDate,
    /// A holiday (`false`) or a make-up working day (`true`).
    pub workday: bool,
    /// Its name, e.g. 国庆节.
    pub name: String,
}

/// The calendar and when it was read.
type CachedCalendar = (Instant, Arc<WorkingCalendar>);

/// Every unit's parent and whether it is active: the organisation as the lifecycle sees it
/// ([`domain::UnitDirectory`]), read in one query.
#[derive(Debug, Clone, Default)]
pub struct UnitTree {
    parent: std::collections::HashMap<UnitId, Option<UnitId>>,
    active: std::collections::HashSet<UnitId>,
}

impl UnitTree {
    /// Whether the tree knows the unit.
    pub fn knows(&self, unit: UnitId) -> bool {
        self.parent.contains_key(&unit)
    }
}

impl domain::UnitDirectory for UnitTree {
    fn is_within(&self, unit: UnitId, ancestor: UnitId) -> bool {
        let mut cur = Some(unit);
        // The hierarchy has no cycles (a unit is never its own parent); the bound guards a
        // corrupted table all the same.
        for _ in 0..=self.parent.len() {
            match cur {
                Some(u) if u == ancestor => return true,
                Some(u) => cur = self.parent.get(&u).copied().flatten(),
                None => return false,
            }
        }
        false
    }

    fn is_active(&self, unit: UnitId) -> bool {
        self.active.contains(&unit)
    }
}

/// How long a cached calendar is trusted when another instance may have changed it.
const CALENDAR_TTL: Duration = Duration::from_secs(60);

/// Reads and writes reference data. The working calendar is cached for a minute (and dropped
/// at once when this process changes it), because every command needs it.
#[derive(Clone)]
pub struct ReferenceData {
    pool: Pool,
    calendar: Arc<RwLock<Option<CachedCalendar>>>,
    /// The deactivated units as last read (every read of the unit tree refreshes it), so that a
    /// token naming one can be refused without a query.
    inactive: Arc<std::sync::RwLock<std::collections::HashSet<UnitId>>>,
    /// The active units as last read, the same way.
    active: Arc<std::sync::RwLock<std::collections::HashSet<UnitId>>>,
}

const UNIT_COLS: &str = "id, name, kind, parent_id, active, created_at, updated_at";
const CATEGORY_COLS: &str = "id, code, name, kind, default_unit_id, policy, active, created_at, updated_at, attributes";

impl ReferenceData {
    /// Reference data on a pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool, calendar: Arc::new(RwLock::new(None)), inactive: Arc::default(), active: Arc::default() }
    }

    /// The pool it reads through.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates a unit.
    pub async fn create_unit(&self, name: &str, kind: UnitKind, parent: Option<UnitId>) -> Result<Unit, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "INSERT INTO units (id, name, kind, parent_id) VALUES ($1, $2, $3, $4) RETURNING {UNIT_COLS}"
            ))
            .await?;
        let row =
            client.query_one(&stmt, &[&Uuid::new_v4(), &name, &kind.as_str(), &parent.map(|p| p.as_uuid())]).await?;
        Ok(Unit::from_row(&row))
    }

    /// Lists units, by name.
    pub async fn list_units(&self, include_inactive: bool) -> Result<Vec<Unit>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {UNIT_COLS} FROM units WHERE active OR $1 ORDER BY kind, name"))
            .await?;
        Ok(client.query(&stmt, &[&include_inactive]).await?.iter().map(Unit::from_row).collect())
    }

    /// One unit.
    pub async fn unit(&self, id: UnitId) -> Result<Option<Unit>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&format!("SELECT {UNIT_COLS} FROM units WHERE id = $1")).await?;
        Ok(client.query_opt(&stmt, &[&id.as_uuid()]).await?.as_ref().map(Unit::from_row))
    }

    /// Renames a unit; `None` when it does not exist.
    pub async fn rename_unit(&self, id: UnitId, name: &str) -> Result<Option<Unit>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE units SET name = $2, updated_at = now() WHERE id = $1 RETURNING {UNIT_COLS}"
            ))
            .await?;
        Ok(client.query_opt(&stmt, &[&id.as_uuid(), &name]).await?.as_ref().map(Unit::from_row))
    }

    /// Deactivates a unit; `None` when it does not exist.
    pub async fn deactivate_unit(&self, id: UnitId) -> Result<Option<Unit>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE units SET active = false, updated_at = now() WHERE id = $1 RETURNING {UNIT_COLS}"
            ))
            .await?;
        let unit = client.query_opt(&stmt, &[&id.as_uuid()]).await?.as_ref().map(Unit::from_row);
        if unit.is_some() {
            if let Ok(mut known) = self.inactive.write() {
                known.insert(id);
            }
            if let Ok(mut known) = self.active.write() {
                known.remove(&id);
            }
        }
        Ok(unit)
    }

    /// Creates a category.
    pub async fn create_category(&self, input: &CategoryInput) -> Result<Category, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "INSERT INTO categories (id, code, name, kind, default_unit_id, policy, active) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CATEGORY_COLS}"
            ))
            .await?;
        let policy = serde_json::to_value(input.policy).unwrap_or_default();
        let row = client
            .query_one(
                &stmt,
                &[
                    &Uuid::new_v4(),
                    &input.code,
                    &input.name,
                    &input.kind,
                    &input.default_unit_id.map(|u| u.as_uuid()),
                    &policy,
                    &input.active,
                ],
            )
            .await?;
        Category::from_row(&row)
    }

    /// Updates a category; `None` when it does not exist. Existing cases keep their deadlines.
    pub async fn update_category(&self, id: CategoryId, input: &CategoryInput) -> Result<Option<Category>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE categories SET code = $2, name = $3, kind = $4, default_unit_id = $5, policy = $6, active = $7, \
                 updated_at = now() WHERE id = $1 RETURNING {CATEGORY_COLS}"
            ))
            .await?;
        let policy = serde_json::to_value(input.policy).unwrap_or_default();
        let row = client
            .query_opt(
                &stmt,
                &[
                    &id.as_uuid(),
                    &input.code,
                    &input.name,
                    &input.kind,
                    &input.default_unit_id.map(|u| u.as_uuid()),
                    &policy,
                    &input.active,
                ],
            )
            .await?;
        row.as_ref().map(Category::from_row).transpose()
    }

    /// Replaces the extra fields a category asks for (checked by the caller); `None` when it
    /// does not exist.
    pub async fn set_category_attributes(
        &self,
        id: CategoryId,
        attributes: &serde_json::Value,
    ) -> Result<Option<Category>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE categories SET attributes = $2, updated_at = now() WHERE id = $1 RETURNING {CATEGORY_COLS}"
            ))
            .await?;
        let row = client.query_opt(&stmt, &[&id.as_uuid(), attributes]).await?;
        row.as_ref().map(Category::from_row).transpose()
    }

    /// The category with this code.
    pub async fn category_by_code(&self, code: &str) -> Result<Option<Category>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&format!("SELECT {CATEGORY_COLS} FROM categories WHERE code = $1")).await?;
        client.query_opt(&stmt, &[&code]).await?.as_ref().map(Category::from_row).transpose()
    }

    /// Lists categories, by code.
    pub async fn list_categories(&self) -> Result<Vec<Category>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&format!("SELECT {CATEGORY_COLS} FROM categories ORDER BY code")).await?;
        client.query(&stmt, &[]).await?.iter().map(Category::from_row).collect()
    }

    /// One category.
    pub async fn category(&self, id: CategoryId) -> Result<Option<Category>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&format!("SELECT {CATEGORY_COLS} FROM categories WHERE id = $1")).await?;
        client.query_opt(&stmt, &[&id.as_uuid()]).await?.as_ref().map(Category::from_row).transpose()
    }

    /// The policy for a case of a category (the statutory default without one).
    pub async fn policy_for(&self, category: Option<CategoryId>) -> Result<DeadlinePolicy, StoreError> {
        match category {
            None => Ok(DeadlinePolicy::statutory_default()),
            Some(id) => Ok(self.category(id).await?.map_or_else(DeadlinePolicy::statutory_default, |c| c.policy)),
        }
    }

    /// The exceptional days of a year, or `None` when the year's calendar is not loaded (a loaded
    /// year may have no exceptional day and is still `Some`).
    pub async fn calendar_year(&self, year: i32) -> Result<Option<Vec<CalendarDay>>, StoreError> {
        let client = self.pool.get().await?;
        let loaded = client.prepare_cached("SELECT 1 FROM calendar_years WHERE year = $1").await?;
        if client.query_opt(&loaded, &[&year]).await?.is_none() {
            return Ok(None);
        }
        let stmt = client
            .prepare_cached("SELECT day, kind, name FROM calendar_days WHERE day >= $1 AND day < $2 ORDER BY day")
            .await?;
        let (from, to) = year_bounds(year)?;
        let rows = client.query(&stmt, &[&from, &to]).await?;
        Ok(Some(
            rows.iter()
                .map(|r| CalendarDay { day: r.get(0), workday: r.get::<_, String>(1) == "workday", name: r.get(2) })
                .collect(),
        ))
    }

    /// Replaces the exceptional days of a year, in one transaction.
    pub async fn put_calendar_year(&self, year: i32, days: &[CalendarDay]) -> Result<(), StoreError> {
        let (from, to) = year_bounds(year)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM calendar_days WHERE day >= $1 AND day < $2", &[&from, &to]).await?;
        tx.execute(
            "INSERT INTO calendar_years (year) VALUES ($1) ON CONFLICT (year) DO UPDATE SET loaded_at = now()",
            &[&year],
        )
        .await?;
        let insert = tx.prepare("INSERT INTO calendar_days (day, kind, name) VALUES ($1, $2, $3)").await?;
        for d in days {
            tx.execute(&insert, &[&d.day, &if d.workday { "workday" } else { "holiday" }, &d.name]).await?;
        }
        tx.commit().await?;
        *self.calendar.write().await = None;
        Ok(())
    }

    /// Creates or replaces the rule for a category (and village).
    pub async fn put_routing_rule(
        &self,
        category: CategoryId,
        village: Option<UnitId>,
        unit: UnitId,
        tier: Tier,
    ) -> Result<RoutingRule, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO routing_rules (id, category_id, village_id, unit_id, tier) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (category_id, coalesce(village_id, '00000000-0000-0000-0000-000000000000'::uuid)) \
                 DO UPDATE SET unit_id = EXCLUDED.unit_id, tier = EXCLUDED.tier, updated_at = now() \
                 RETURNING id, category_id, village_id, unit_id, tier, created_at, updated_at",
            )
            .await?;
        let tier = if tier == Tier::Village { "village" } else { "town" };
        let row = client
            .query_one(
                &stmt,
                &[&Uuid::new_v4(), &category.as_uuid(), &village.map(|v| v.as_uuid()), &unit.as_uuid(), &tier],
            )
            .await?;
        Ok(RoutingRule::from_row(&row))
    }

    /// Every routing rule, by category and village.
    pub async fn list_routing_rules(&self) -> Result<Vec<RoutingRule>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, category_id, village_id, unit_id, tier, created_at, updated_at FROM routing_rules \
                 ORDER BY category_id, village_id NULLS FIRST",
            )
            .await?;
        Ok(client.query(&stmt, &[]).await?.iter().map(RoutingRule::from_row).collect())
    }

    /// Deletes a rule; whether it existed.
    pub async fn delete_routing_rule(&self, id: Uuid) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute("DELETE FROM routing_rules WHERE id = $1", &[&id]).await? > 0)
    }

    /// The routes a case of `category` from `village` may take by default, best first: the
    /// village's rule, the category-wide rule, the category's default unit. Empty without a
    /// category. The caller takes the first one it may use (an active unit the case does not
    /// accuse).
    pub async fn routes_for(
        &self,
        category: Option<CategoryId>,
        village: Option<UnitId>,
    ) -> Result<Vec<Route>, StoreError> {
        let Some(category) = category else { return Ok(Vec::new()) };
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT unit_id, tier, village_id IS NOT NULL FROM routing_rules \
                 WHERE category_id = $1 AND (village_id = $2 OR village_id IS NULL) \
                 ORDER BY village_id NULLS LAST",
            )
            .await?;
        let mut routes: Vec<Route> = client
            .query(&stmt, &[&category.as_uuid(), &village.map(|v| v.as_uuid())])
            .await?
            .iter()
            .map(|r| Route {
                unit_id: UnitId::from_uuid(r.get(0)),
                tier: if r.get::<_, String>(1) == "village" { Tier::Village } else { Tier::Town },
                source: if r.get(2) { RouteSource::VillageRule } else { RouteSource::CategoryRule },
            })
            .collect();
        drop(client);
        if let Some(unit) = self.category(category).await?.and_then(|c| c.default_unit_id)
            && let Some(u) = self.unit(unit).await?
        {
            routes.push(Route { unit_id: u.id, tier: tier_of(u.kind), source: RouteSource::CategoryDefault });
        }
        Ok(routes)
    }

    /// Which years are loaded and when each was last written: changes whenever a year's
    /// calendar is loaded or corrected, by any instance.
    pub async fn calendar_version(&self) -> Result<Vec<(i32, DateTime<Utc>)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT year, loaded_at FROM calendar_years ORDER BY year").await?;
        Ok(client.query(&stmt, &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The organisation's units with their hierarchy, read now (a few hundred rows at most).
    pub async fn unit_tree(&self) -> Result<UnitTree, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT id, parent_id, active FROM units").await?;
        let mut tree = UnitTree::default();
        let mut inactive = std::collections::HashSet::new();
        for r in client.query(&stmt, &[]).await? {
            let id = UnitId::from_uuid(r.get(0));
            tree.parent.insert(id, r.get::<_, Option<Uuid>>(1).map(UnitId::from_uuid));
            if r.get::<_, bool>(2) {
                tree.active.insert(id);
            } else {
                inactive.insert(id);
            }
        }
        if let Ok(mut known) = self.inactive.write() {
            *known = inactive;
        }
        if let Ok(mut known) = self.active.write() {
            known.clone_from(&tree.active);
        }
        Ok(tree)
    }

    /// Whether `unit` was deactivated, as of the last read of the unit tree (this process's own
    /// deactivations at once, other instances' within the refresh interval of the caller).
    pub fn is_known_inactive(&self, unit: UnitId) -> bool {
        self.inactive.read().is_ok_and(|s| s.contains(&unit))
    }

    /// Whether `unit` was active at the last read of the unit tree.
    pub fn is_known_active(&self, unit: UnitId) -> bool {
        self.active.read().is_ok_and(|s| s.contains(&unit))
    }

    /// The working calendar (cached; see the type's docs).
    pub async fn working_calendar(&self) -> Result<Arc<WorkingCalendar>, StoreError> {
        if let Some((at, cal)) = self.calendar.read().await.as_ref()
            && at.elapsed() < CALENDAR_TTL
        {
            return Ok(cal.clone());
        }
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT day, kind FROM calendar_days").await?;
        let rows = client.query(&stmt, &[]).await?;
        let (mut holidays, mut workdays) = (Vec::new(), Vec::new());
        for r in rows {
            let day: NaiveDate = r.get(0);
            if r.get::<_, String>(1) == "workday" { workdays.push(day) } else { holidays.push(day) }
        }
        let stmt = client.prepare_cached("SELECT year FROM calendar_years").await?;
        let years: Vec<i32> = client.query(&stmt, &[]).await?.iter().map(|r| r.get(0)).collect();
        let cal = Arc::new(WorkingCalendar::new(holidays, workdays).with_years(years));
        *self.calendar.write().await = Some((Instant::now(), cal.clone()));
        Ok(cal)
    }
}

fn year_bounds(year: i32) -> Result<(NaiveDate, NaiveDate), StoreError> {
    let from = NaiveDate::from_ymd_opt(year, 1, 1).ok_or(StoreError::Vault("year out of range"))?;
    let to = NaiveDate::from_ymd_opt(year + 1, 1, 1).ok_or(StoreError::Vault("year out of range"))?;
    debug_assert_eq!(from.year(), year);
    Ok((from, to))
}
