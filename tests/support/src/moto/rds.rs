//! RDS on moto: PostgreSQL instances, alone or as Aurora cluster members.

use aws_sdk_rds::types::Tag;
use aws_sdk_rds::Client;

use super::sdk_error;
use crate::names::unique;

/// A new PostgreSQL instance, in `cluster` when given (as an Aurora member), with its
/// storage encrypted or not, tagged with `tags`; returns its identifier.
pub async fn db_instance(
    rds: &Client,
    encrypted: bool,
    cluster: Option<&str>,
    tags: &[(&str, &str)],
) -> Result<String, String> {
    let id = unique("escher-db");
    let engine = if cluster.is_some() {
        "aurora-postgresql"
    } else {
        "postgres"
    };
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect();
    let mut create = rds
        .create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t3.medium")
        .engine(engine)
        .set_tags(Some(tags))
        .set_db_cluster_identifier(cluster.map(str::to_string));
    // A cluster member's storage and credentials are the cluster's.
    if cluster.is_none() {
        create = create
            .allocated_storage(20)
            .master_username("escher")
            .master_user_password("not-a-secret-1")
            .storage_encrypted(encrypted);
    }
    create
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateDBInstance {id}"), e))?;
    Ok(id)
}
