use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum ContactRole {
    #[sea_orm(string_value = "decision_maker")]
    DecisionMaker,
    #[sea_orm(string_value = "economic_buyer")]
    EconomicBuyer,
    #[sea_orm(string_value = "champion")]
    Champion,
    #[sea_orm(string_value = "influencer")]
    Influencer,
    #[sea_orm(string_value = "technical_buyer")]
    TechnicalBuyer,
    #[sea_orm(string_value = "user")]
    User,
    #[sea_orm(string_value = "blocker")]
    Blocker,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "opportunity_contact_roles")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub opportunity_id: i64,
    pub contact_id: i64,
    pub role: ContactRole,
    pub is_primary: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::contact::Entity",
        from = "Column::ContactId",
        to = "super::contact::Column::Id"
    )]
    Contact,
}

impl Related<super::contact::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Contact.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
