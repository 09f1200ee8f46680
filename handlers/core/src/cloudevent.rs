//! CloudEvents 1.0 (structured JSON) view of a `UnifiedEvent`, for exporting events to
//! brokers and tools that speak CloudEvents.

use serde_json::{json, Value};

use crate::event::UnifiedEvent;

impl UnifiedEvent {
    /// The event as a CloudEvents 1.0 JSON object; `data` is the whole `UnifiedEvent`.
    pub fn to_cloudevent(&self) -> Value {
        json!({
            "specversion": "1.0",
            "id": self.event_id,
            "source": format!("/escher/{}/{}/{}", self.cloud_provider, self.account_id, self.region),
            "type": format!("io.escher.{}", self.event_type),
            "subject": self.resource.id,
            "time": self.timestamp.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "datacontenttype": "application/json",
            "dataschema": "https://escher.dev/schemas/unified-event.schema.json",
            "data": self,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use crate::event::*;

    #[test]
    fn maps_the_required_cloudevents_attributes() {
        let event = UnifiedEvent {
            event_id: "aws-abc".into(),
            event_type: EventType::BucketPublic,
            severity: Severity::High,
            cloud_provider: CloudProvider::Aws,
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            resource: Resource {
                kind: "s3_bucket".into(),
                id: "arn:aws:s3:::reports".into(),
                name: "reports".into(),
                ..Default::default()
            },
            context: EventContext::default(),
            timestamp: chrono::Utc.with_ymd_and_hms(2026, 11, 2, 3, 4, 5).unwrap(),
            source: EventSource::AwsCloudTrail,
            raw_event: std::sync::Arc::new(serde_json::json!({})),
            schema_version: SCHEMA_VERSION.into(),
        };
        let ce = event.to_cloudevent();
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], "aws-abc");
        assert_eq!(ce["source"], "/escher/aws/123456789012/eu-west-1");
        assert_eq!(ce["type"], "io.escher.bucket_public");
        assert_eq!(ce["subject"], "arn:aws:s3:::reports");
        assert_eq!(ce["time"], "2026-11-02T03:04:05Z");
        assert_eq!(ce["data"]["resource"]["name"], "reports");
    }
}
