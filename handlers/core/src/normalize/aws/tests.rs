//! Unit tests for the AWS rules that are easy to get wrong: severity tables, detection edge
//! cases, errors naming the right field, and ids (distinct per item, stable on redelivery).

use serde_json::{json, Value};

use super::findings::{asff_severity, guardduty_severity};
use super::*;
use crate::event::{EventType, Severity};
use crate::normalize::{normalize as normalize_bytes, NormalizeError, Normalized};

fn run(value: &Value) -> Result<Normalized, NormalizeError> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    normalize_bytes(&bytes)
}

fn events(value: &Value) -> Vec<UnifiedEvent> {
    match run(value) {
        Ok(Normalized::Events(events)) => events,
        other => panic!("expected events, got {other:?}"),
    }
}

fn types(value: &Value) -> Vec<EventType> {
    events(value).iter().map(|e| e.event_type).collect()
}

fn field_error(value: &Value) -> (String, String) {
    match run(value) {
        Err(NormalizeError::InvalidField { field, problem, .. }) => (field, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

fn eventbridge(detail_type: &str, source: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": "0d3c2b1a-0000-4000-8000-000000000001",
        "detail-type": detail_type, "source": source, "account": "123456789012",
        "time": "2024-05-01T10:00:00Z", "region": "eu-west-1", "resources": [], "detail": detail
    })
}

fn cloudtrail(name: &str, source: &str, params: Value) -> Value {
    json!({
        "eventVersion": "1.09", "eventTime": "2024-05-01T10:00:00Z", "eventSource": source,
        "eventName": name, "awsRegion": "eu-west-1", "eventID": "ev-1",
        "recipientAccountId": "123456789012", "requestParameters": params,
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/ops"}
    })
}

fn classic_alarm(metric: &str, operator: &str, state: &str) -> Value {
    json!({
        "AlarmName": "a", "AlarmDescription": "", "AWSAccountId": "123456789012",
        "NewStateValue": state, "NewStateReason": "r", "StateChangeTime": "2024-05-01T10:00:00.000+0000",
        "Region": "EU (Ireland)", "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a",
        "OldStateValue": "OK",
        "Trigger": {"MetricName": metric, "Namespace": "AWS/RDS", "Statistic": "MINIMUM",
            "Dimensions": [{"name": "DBInstanceIdentifier", "value": "orders"}],
            "Period": 300, "EvaluationPeriods": 1, "ComparisonOperator": operator,
            "Threshold": 1.0e9, "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": ""}
    })
}

#[test]
fn guardduty_scores_map_to_the_agreed_bands() {
    let table = [
        (0.0, Severity::Info),
        (3.9, Severity::Info),
        (4.0, Severity::Medium),
        (6.9, Severity::Medium),
        (7.0, Severity::High),
        (8.9, Severity::High),
        (9.0, Severity::Critical),
        (10.0, Severity::Critical),
    ];
    for (score, want) in table {
        assert_eq!(guardduty_severity(score), want, "score {score}");
    }
}

#[test]
fn asff_labels_map_to_our_severities() {
    assert_eq!(asff_severity("INFORMATIONAL"), Some(Severity::Info));
    assert_eq!(asff_severity("LOW"), Some(Severity::Info));
    assert_eq!(asff_severity("MEDIUM"), Some(Severity::Medium));
    assert_eq!(asff_severity("high"), Some(Severity::High));
    assert_eq!(asff_severity("CRITICAL"), Some(Severity::Critical));
    assert_eq!(asff_severity("SEVERE"), None);
}

#[test]
fn guardduty_severity_as_a_string_is_read_too() {
    let detail = json!({"id": "f1", "type": "Recon:EC2/PortProbeUnprotectedPort", "severity": "9.5",
        "accountId": "123456789012", "resource": {"resourceType": "Instance",
        "instanceDetails": {"instanceId": "i-1", "tags": [{"key": "env", "value": "dev"}]}}});
    let out = events(&eventbridge("GuardDuty Finding", "aws.guardduty", detail));
    assert_eq!(out[0].severity, Severity::Critical);
    assert_eq!(
        out[0].resource.tags.get("env").map(String::as_str),
        Some("dev")
    );
}

#[test]
fn unknown_eventbridge_detail_type_is_unrecognized_naming_source_and_type() {
    let err = run(&eventbridge("Glue Job State Change", "aws.glue", json!({})))
        .expect_err("unknown detail-type");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            NormalizeError::Unrecognized {
                envelope: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains("aws.glue") && text.contains("Glue Job State Change"),
        "{text}"
    );
}

#[test]
fn other_clouds_shapes_are_not_claimed() {
    let others = [
        json!({"message": {"data": "e30=", "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}),
        json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {}}}),
        json!({"incident": {"state": "open"}, "version": "1.2"}),
        json!({"id": "x", "source": "/subscriptions/s", "type": "Microsoft.Resources.ResourceWriteSuccess", "data": {}}),
        json!({"hello": "world"}),
    ];
    for value in others {
        assert!(detect(&value).is_none(), "claimed {value}");
    }
    assert!(detect(&json!([{"eventType": "x"}])).is_none());
}

#[test]
fn records_from_another_aws_service_are_unrecognized_not_ignored() {
    let s3 = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]});
    let err = run(&s3).expect_err("s3 records");
    assert!(err.to_string().contains("aws:s3"), "{err}");
}

#[test]
fn missing_alarm_state_names_the_field() {
    let detail = json!({"alarmName": "x", "state": {"reason": "r"}});
    let (field, problem) = field_error(&eventbridge(
        "CloudWatch Alarm State Change",
        "aws.cloudwatch",
        detail,
    ));
    assert_eq!(field, "detail.state.value");
    assert_eq!(problem, "is missing");
}

#[test]
fn unknown_alarm_state_names_the_field_and_value() {
    let detail = json!({"alarmName": "x", "state": {"value": "PANIC"}});
    let (field, problem) = field_error(&eventbridge(
        "CloudWatch Alarm State Change",
        "aws.cloudwatch",
        detail,
    ));
    assert_eq!(field, "detail.state.value");
    assert!(problem.contains("PANIC"), "{problem}");
}

#[test]
fn detail_that_is_not_an_object_names_detail() {
    let (field, problem) = field_error(&eventbridge(
        "GuardDuty Finding",
        "aws.guardduty",
        json!([1]),
    ));
    assert_eq!(field, "detail");
    assert!(problem.contains("an array"), "{problem}");
}

#[test]
fn bad_findings_name_the_finding_by_index() {
    let detail = json!({"findings": [{"Id": "a", "ProductArn": "p"}, {"ProductArn": "p"}]});
    let (field, _) = field_error(&eventbridge(
        "Security Hub Findings - Imported",
        "aws.securityhub",
        detail,
    ));
    assert_eq!(field, "detail.findings[1].Id");
    let (field, problem) = field_error(&eventbridge(
        "Security Hub Findings - Imported",
        "aws.securityhub",
        json!({"findings": {"Id": "a"}}),
    ));
    assert_eq!(
        (field.as_str(), problem.as_str()),
        ("detail.findings", "must be an array, found an object")
    );
}

#[test]
fn config_rule_invocation_with_broken_invoking_event_names_it() {
    let value =
        json!({"configRuleName": "r", "invokingEvent": "{not json", "accountId": "123456789012"});
    let (field, problem) = field_error(&value);
    assert_eq!(field, "invokingEvent");
    assert!(problem.starts_with("is not valid JSON"), "{problem}");
}

#[test]
fn sns_message_in_plain_text_is_unrecognized_naming_the_topic() {
    let value = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:alerts", "Message": "disk almost full"}}]});
    let err = run(&value).expect_err("plain text");
    assert!(
        err.to_string()
            .contains("arn:aws:sns:eu-west-1:123456789012:alerts"),
        "{err}"
    );
}

#[test]
fn sns_record_missing_its_message_names_the_path() {
    let value = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m", "TopicArn": "t"}}]});
    let (field, problem) = field_error(&value);
    assert_eq!(
        (field.as_str(), problem.as_str()),
        ("Records[0].Sns.Message", "is missing")
    );
}

#[test]
fn sns_subscription_confirmation_is_a_handshake() {
    let value = json!({"Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "tok",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:alerts",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok"});
    match run(&value) {
        Ok(Normalized::Handshake(h)) => {
            assert_eq!(h.kind, "sns_subscription_confirmation");
            assert_eq!(h.validation_code, "tok");
            assert!(h.validation_url.is_some());
        }
        other => panic!("expected a handshake, got {other:?}"),
    }
}

#[test]
fn findings_get_distinct_ids_that_survive_redelivery() {
    let finding = |id: &str| {
        json!({"SchemaVersion": "2018-10-08", "Id": id, "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/securityhub",
        "AwsAccountId": "123456789012", "Severity": {"Label": "HIGH"}, "Compliance": {"Status": "FAILED"},
        "UpdatedAt": "2024-05-01T10:00:00Z", "Resources": [{"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::b"}]})
    };
    let value = eventbridge(
        "Security Hub Findings - Imported",
        "aws.securityhub",
        json!({"findings": [finding("f-1"), finding("f-2")]}),
    );
    let first = events(&value);
    let again = events(&value);
    assert_eq!(first.len(), 2);
    assert_ne!(first[0].event_id, first[1].event_id);
    assert_eq!(first[0].event_id, again[0].event_id);
    assert_eq!(first[1].event_id, again[1].event_id);
    // Each event keeps only its own finding.
    assert_eq!(
        first[1].raw_event.pointer("/detail/findings/0/Id"),
        Some(&json!("f-2"))
    );
    assert_eq!(first[1].raw_event.pointer("/detail/findings/1"), None);
}

#[test]
fn repeated_sns_message_ids_still_give_distinct_events() {
    let record = json!({"EventSource": "aws:sns", "Sns": {"MessageId": "same", "TopicArn": "t",
        "Message": classic_alarm("FreeStorageSpace", "LessThanThreshold", "ALARM").to_string()}});
    let value = json!({"Records": [record.clone(), record.clone()]});
    let out = events(&value);
    assert_eq!(out.len(), 2);
    assert_ne!(out[0].event_id, out[1].event_id);
    // A lone delivery of that message keeps the id of the first.
    let single = events(&json!({"Records": [record]}));
    assert_eq!(single[0].event_id, out[0].event_id);
    // The raw event holds the decoded message.
    assert_eq!(
        single[0].raw_event.pointer("/Sns/Message/AlarmName"),
        Some(&json!("a"))
    );
}

#[test]
fn alarm_type_depends_on_metric_and_breach_side() {
    // Free space below the threshold: running out.
    assert_eq!(
        types(&classic_alarm(
            "FreeStorageSpace",
            "LessThanThreshold",
            "ALARM"
        )),
        [EventType::CapacityHigh]
    );
    // Free space above a threshold is not a capacity problem.
    assert_eq!(
        types(&classic_alarm(
            "FreeStorageSpace",
            "GreaterThanThreshold",
            "ALARM"
        )),
        [EventType::MetricAlarm]
    );
    assert_eq!(
        types(&classic_alarm(
            "ReadLatency",
            "GreaterThanThreshold",
            "ALARM"
        )),
        [EventType::MetricAlarm]
    );
    assert_eq!(
        types(&classic_alarm(
            "FreeStorageSpace",
            "LessThanThreshold",
            "OK"
        )),
        [EventType::AlarmResolved]
    );
    let blind = events(&classic_alarm(
        "FreeStorageSpace",
        "LessThanThreshold",
        "INSUFFICIENT_DATA",
    ));
    assert_eq!(blind[0].event_type, EventType::MetricAlarm);
    assert_eq!(blind[0].severity, Severity::Medium);
    // The single dimension names the resource.
    assert_eq!(blind[0].resource.kind, "rds_instance");
    assert_eq!(
        blind[0].resource.id,
        "arn:aws:rds:eu-west-1:123456789012:db:orders"
    );
    assert_eq!(blind[0].region, "eu-west-1");
}

#[test]
fn cloudtrail_bucket_acl_and_policy_rules() {
    let grant = json!({"bucketName": "b", "AccessControlPolicy": {"AccessControlList": {"Grant": [
        {"Grantee": {"xsi:type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"}]}}});
    assert_eq!(
        types(&cloudtrail("PutBucketAcl", "s3.amazonaws.com", grant)),
        [EventType::BucketPublic]
    );
    let canned = json!({"bucketName": "b", "x-amz-acl": ["public-read"]});
    assert_eq!(
        types(&cloudtrail("PutBucketAcl", "s3.amazonaws.com", canned)),
        [EventType::BucketPublic]
    );
    let conditioned = json!({"bucketName": "b", "bucketPolicy": {"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}]}});
    assert_eq!(
        types(&cloudtrail(
            "PutBucketPolicy",
            "s3.amazonaws.com",
            conditioned
        )),
        [EventType::ResourceChanged]
    );
    let as_string = json!({"bucketName": "b", "bucketPolicy":
        "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"*\"]},\"Action\":\"s3:GetObject\"}}"});
    assert_eq!(
        types(&cloudtrail(
            "PutBucketPolicy",
            "s3.amazonaws.com",
            as_string
        )),
        [EventType::BucketPublic]
    );
}

#[test]
fn cloudtrail_public_access_block_weakening_only() {
    let all_on = json!({"bucketName": "b", "PublicAccessBlockConfiguration": {"BlockPublicAcls": true,
        "IgnorePublicAcls": true, "BlockPublicPolicy": true, "RestrictPublicBuckets": true}});
    assert_eq!(
        types(&cloudtrail(
            "PutBucketPublicAccessBlock",
            "s3.amazonaws.com",
            all_on
        )),
        [EventType::ResourceChanged]
    );
    let one_off = json!({"bucketName": "b", "PublicAccessBlockConfiguration": {"BlockPublicAcls": true,
        "IgnorePublicAcls": true, "BlockPublicPolicy": false, "RestrictPublicBuckets": true}});
    let out = events(&cloudtrail(
        "PutBucketPublicAccessBlock",
        "s3.amazonaws.com",
        one_off,
    ));
    assert_eq!(out[0].event_type, EventType::BucketPublic);
    assert_eq!(
        out[0].resource.metadata.get("disabled_protections"),
        Some(&json!(["BlockPublicPolicy"]))
    );
}

#[test]
fn cloudtrail_security_group_ingress() {
    let v6 = json!({"groupId": "sg-1", "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
        "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}});
    let out = events(&cloudtrail(
        "AuthorizeSecurityGroupIngress",
        "ec2.amazonaws.com",
        v6,
    ));
    assert_eq!(out[0].event_type, EventType::FirewallOpen);
    assert_eq!(
        out[0].resource.id,
        "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-1"
    );
    assert_eq!(
        out[0].resource.metadata.get("cidrs"),
        Some(&json!(["::/0"]))
    );
    assert_eq!(out[0].resource.metadata.get("ports"), Some(&json!([443])));
    let private = json!({"groupId": "sg-1", "ipPermissions": {"items": [{"ipProtocol": "-1",
        "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}}]}});
    assert_eq!(
        types(&cloudtrail(
            "AuthorizeSecurityGroupIngress",
            "ec2.amazonaws.com",
            private
        )),
        [EventType::ResourceChanged]
    );
    // The older call form with the rule's fields at the top.
    let flat = json!({"groupName": "web", "ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389, "cidrIp": "0.0.0.0/0"});
    assert_eq!(
        types(&cloudtrail(
            "AuthorizeSecurityGroupIngress",
            "ec2.amazonaws.com",
            flat
        )),
        [EventType::FirewallOpen]
    );
}

#[test]
fn cloudtrail_verbs_failures_and_reads() {
    let user = json!({"userName": "alice"});
    let created = events(&cloudtrail("CreateUser", "iam.amazonaws.com", user.clone()));
    assert_eq!(created[0].event_type, EventType::ResourceCreated);
    assert_eq!(
        created[0].resource.id,
        "arn:aws:iam::123456789012:user/alice"
    );
    assert_eq!(
        types(&cloudtrail("DeleteUser", "iam.amazonaws.com", user.clone())),
        [EventType::ResourceDeleted]
    );
    assert_eq!(
        types(&cloudtrail(
            "DeleteUserPolicy",
            "iam.amazonaws.com",
            user.clone()
        )),
        [EventType::ResourceChanged]
    );
    assert_eq!(
        types(&cloudtrail(
            "DeleteBucketPolicy",
            "s3.amazonaws.com",
            json!({"bucketName": "b"})
        )),
        [EventType::ResourceChanged]
    );
    let terminate =
        json!({"instancesSet": {"items": [{"instanceId": "i-1"}, {"instanceId": "i-2"}]}});
    let out = events(&cloudtrail(
        "TerminateInstances",
        "ec2.amazonaws.com",
        terminate,
    ));
    assert_eq!(
        out.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        [EventType::ResourceDeleted; 2]
    );
    assert_ne!(out[0].event_id, out[1].event_id);
    let mut failed = cloudtrail("CreateUser", "iam.amazonaws.com", user.clone());
    failed["errorCode"] = json!("AccessDenied");
    assert!(events(&failed).is_empty());
    assert!(events(&cloudtrail(
        "DescribeInstances",
        "ec2.amazonaws.com",
        json!({})
    ))
    .is_empty());
}

#[test]
fn the_same_api_call_has_one_id_whatever_the_channel() {
    let record = cloudtrail(
        "CreateBucket",
        "s3.amazonaws.com",
        json!({"bucketName": "b"}),
    );
    let direct = events(&record);
    let wrapped = events(&eventbridge(
        "AWS API Call via CloudTrail",
        "aws.s3",
        record.clone(),
    ));
    let logged = events(&json!({"Records": [record]}));
    assert_eq!(direct[0].event_id, wrapped[0].event_id);
    assert_eq!(direct[0].event_id, logged[0].event_id);
}

#[test]
fn helpers_read_aws_spellings() {
    assert_eq!(resource_kind("AWS::EC2::VOLUME"), "ebs_volume");
    assert_eq!(resource_kind("AwsEc2SecurityGroup"), "security_group");
    assert_eq!(resource_kind("AWS::EFS::FileSystem"), "efs_file_system");
    assert_eq!(resource_kind("AwsEksCluster"), "eks_cluster");
    assert_eq!(resource_kind("AWS::::Account"), "aws_account");
    assert_eq!(snake_case("DBInstance"), "db_instance");
    assert_eq!(short_name("arn:aws:ec2:eu-west-1:1:instance/i-1"), "i-1");
    assert_eq!(short_name("arn:aws:s3:::bucket"), "bucket");
    assert_eq!(
        short_name("arn:aws:cloudwatch:eu-west-1:1:alarm:High CPU"),
        "High CPU"
    );
    assert!(looks_like_region("us-gov-west-1"));
    assert!(!looks_like_region("REGION"));
    assert!(!looks_like_region("US East (N. Virginia)"));
    assert_eq!(
        pick_account([Some("EXAMPLE"), Some("123456789012")]),
        "123456789012"
    );
    assert_eq!(pick_account([Some("EXAMPLE"), None]), "EXAMPLE");
    assert_eq!(
        build_arn("ec2_instance", "i-1", "cn-north-1", "123456789012").as_deref(),
        Some("arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-1")
    );
}

#[test]
fn wrong_types_anywhere_never_panic() {
    let bodies = [
        json!(null),
        json!([]),
        json!("x"),
        json!(7),
        json!({"state": [], "alarmName": {}, "findings": "x", "configurationItem": 3}),
    ];
    let kinds = [
        ("CloudWatch Alarm State Change", "aws.cloudwatch"),
        ("CloudWatch Alarm Configuration Change", "aws.cloudwatch"),
        ("AWS API Call via CloudTrail", "aws.s3"),
        ("EC2 Instance State-change Notification", "aws.ec2"),
        ("EBS Volume Notification", "aws.ec2"),
        ("Config Rules Compliance Change", "aws.config"),
        ("Config Configuration Item Change", "aws.config"),
        ("GuardDuty Finding", "aws.guardduty"),
        ("Security Hub Findings - Imported", "aws.securityhub"),
        ("AWS Health Event", "aws.health"),
        ("Scheduled Event", "aws.events"),
        ("ECS Service Action", "aws.ecs"),
        ("CloudFormation Stack Status Change", "aws.cloudformation"),
    ];
    for (detail_type, source) in kinds {
        for body in &bodies {
            let _ = run(&eventbridge(detail_type, source, body.clone()));
            let mut odd = eventbridge(detail_type, source, json!({}));
            odd["resources"] = body.clone();
            odd["time"] = body.clone();
            let _ = run(&odd);
        }
    }
    for body in &bodies {
        let _ = run(&json!({"Records": [{"Sns": {"Message": body}}]}));
        let _ = run(&json!({"Records": [{"EventSource": "aws:sns", "Sns": body}]}));
        let _ = run(
            &json!({"source": "aws.cloudwatch", "alarmData": {"alarmName": "a", "state": {"value": "OK"}, "configuration": body}}),
        );
        let _ = run(&json!({"configRuleName": "r", "invokingEvent": body}));
        let _ = run(&json!({"SchemaVersion": "x", "ProductArn": "p", "Id": body}));
        let _ = run(
            &json!({"eventSource": "ec2.amazonaws.com", "eventName": "AuthorizeSecurityGroupIngress",
            "eventVersion": "1", "requestParameters": {"ipPermissions": body, "groupId": body}}),
        );
    }
}

/// Each record of a log file is its events' raw event, whole, also when one call yields
/// several events (the records are moved out of the payload, not copied, see `fill_payload`).
#[test]
fn log_file_events_keep_their_own_record() {
    let envelope: Value = serde_json::from_str(include_str!(
        "../../../../../tests/fixtures/aws/cloudtrail-eventbridge-runinstances-tagged.json"
    ))
    .unwrap_or_default();
    let launch = envelope["detail"].clone();
    let mut other = launch.clone();
    other["eventID"] = json!("another-call");
    let mut second = other["responseElements"]["instancesSet"]["items"][0].clone();
    second["instanceId"] = json!("i-0second");
    if let Some(items) = other["responseElements"]["instancesSet"]["items"].as_array_mut() {
        items.push(second);
    }
    let log = json!({"Records": [launch, other]});
    let events = events(&log);
    assert_eq!(events.len(), 3, "one event per launched instance");
    for event in &events {
        let record = &log["Records"][usize::from(event.raw_event["eventID"] == "another-call")];
        assert_eq!(*event.raw_event, *record);
    }
}

#[test]
fn ec2_cpu_below_a_fixed_threshold_is_an_idle_instance() {
    let cpu = |operator: &str, state: &str| {
        let mut alarm = classic_alarm("CPUUtilization", operator, state);
        alarm["Trigger"]["Namespace"] = json!("AWS/EC2");
        alarm["Trigger"]["Dimensions"] = json!([{"name": "InstanceId", "value": "i-0abc"}]);
        alarm
    };
    let idle = events(&cpu("LessThanThreshold", "ALARM"));
    assert_eq!(idle[0].event_type, EventType::InstanceIdle);
    assert_eq!(idle[0].resource.kind, "ec2_instance");
    assert_eq!(
        types(&cpu("GreaterThanThreshold", "ALARM")),
        [EventType::CapacityHigh]
    );
    assert_eq!(
        types(&cpu("LessThanThreshold", "OK")),
        [EventType::AlarmResolved]
    );
    // CPU of something that is not one instance (an RDS database) is not idle.
    assert_eq!(
        types(&classic_alarm(
            "CPUUtilization",
            "LessThanThreshold",
            "ALARM"
        )),
        [EventType::MetricAlarm]
    );
}

#[test]
fn a_stack_stuck_after_a_failed_update_is_a_failed_deployment_and_progress_is_info() {
    let stack = "arn:aws:cloudformation:eu-west-1:210987654321:stack/web/9f6c2a10";
    for (status, event_type, severity, stuck) in [
        (
            "UPDATE_ROLLBACK_FAILED",
            EventType::DeploymentFailed,
            Severity::High,
            true,
        ),
        (
            "UPDATE_FAILED",
            EventType::DeploymentFailed,
            Severity::High,
            true,
        ),
        (
            "DELETE_FAILED",
            EventType::DeploymentFailed,
            Severity::High,
            false,
        ),
        (
            "UPDATE_ROLLBACK_COMPLETE",
            EventType::DeploymentFailed,
            Severity::Medium,
            false,
        ),
        (
            "UPDATE_COMPLETE",
            EventType::ResourceChanged,
            Severity::Info,
            false,
        ),
    ] {
        let detail =
            json!({"stack-id": stack, "status-details": {"status": status, "status-reason": ""}});
        let event = events(&eventbridge(
            "CloudFormation Stack Status Change",
            "aws.cloudformation",
            detail,
        ))
        .remove(0);
        assert_eq!(event.event_type, event_type, "{status}");
        assert_eq!(event.severity, severity, "{status}");
        assert_eq!(event.resource.kind, "cloudformation_stack");
        assert_eq!(event.resource.name, "web", "{status}");
        assert_eq!(event.resource.id, stack);
        assert_eq!(
            event.resource.metadata["stuck_after_failed_update"],
            json!(stuck),
            "{status}"
        );
    }
    let no_stack = json!({"status-details": {"status": "UPDATE_FAILED"}});
    let err = run(&eventbridge(
        "CloudFormation Stack Status Change",
        "aws.cloudformation",
        no_stack,
    ))
    .expect_err("a stack event without its stack is refused");
    assert!(err.to_string().contains("stack-id"), "{err}");
}
