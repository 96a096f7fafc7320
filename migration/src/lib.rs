//! Schema migrations. One file per migration; a released migration is never edited,
//! changes come as new files appended to [`Migrator::migrations`].

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_core;
mod m20261123_000002_territories;
mod m20261123_000003_owner_pages;
mod m20261124_000004_stage_scripts;
mod m20261125_000005_reminder_delivery;
mod m20261126_000006_calendar;
mod m20261127_000007_influence;
mod m20261128_000008_reminder_indexes;
mod m20261207_000009_contact_role_order;
mod m20261207_000010_follows_owner;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_core::Migration),
            Box::new(m20261123_000002_territories::Migration),
            Box::new(m20261123_000003_owner_pages::Migration),
            Box::new(m20261124_000004_stage_scripts::Migration),
            Box::new(m20261125_000005_reminder_delivery::Migration),
            Box::new(m20261126_000006_calendar::Migration),
            Box::new(m20261127_000007_influence::Migration),
            Box::new(m20261128_000008_reminder_indexes::Migration),
            Box::new(m20261207_000009_contact_role_order::Migration),
            Box::new(m20261207_000010_follows_owner::Migration),
        ]
    }
}
