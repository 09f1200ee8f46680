//! CloudWatch on moto: the CPU metrics the idle and sizing rules read.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatch::Client;
use chrono::{Duration, Utc};

use super::sdk_error;

/// Datapoints per PutMetricData call: CloudWatch takes up to 1000.
const PER_CALL: usize = 500;

/// `AWS/EC2` `CPUUtilization` of `instance` at `percent`, one datapoint every `every` over
/// the last `over` (each 30 s inside its period, so none falls on a boundary).
pub async fn put_cpu(
    cloudwatch: &Client,
    instance: &str,
    percent: f64,
    over: Duration,
    every: Duration,
) -> Result<(), String> {
    let now = Utc::now();
    let points = over.num_seconds() / every.num_seconds().max(1);
    let data: Vec<MetricDatum> = (1..=points)
        .map(|i| {
            let at = now - every * i as i32 + Duration::seconds(30);
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    Dimension::builder()
                        .name("InstanceId")
                        .value(instance)
                        .build(),
                )
                .timestamp(DateTime::from_secs(at.timestamp()))
                .value(percent)
                .unit(StandardUnit::Percent)
                .build()
        })
        .collect();
    for chunk in data.chunks(PER_CALL) {
        cloudwatch
            .put_metric_data()
            .namespace("AWS/EC2")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("PutMetricData for {instance}"), e))?;
    }
    Ok(())
}

/// A metric alarm named `name` (on `metric` in `namespace`), set to `OK`: an alarm that has
/// recovered since it fired.
pub async fn recovered_alarm(
    cloudwatch: &Client,
    name: &str,
    namespace: &str,
    metric: &str,
) -> Result<(), String> {
    cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace(namespace)
        .metric_name(metric)
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(300)
        .evaluation_periods(1)
        .threshold(80.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("PutMetricAlarm {name}"), e))?;
    cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("recovered")
        .send()
        .await
        .map_err(|e| sdk_error(&format!("SetAlarmState {name}"), e))?;
    Ok(())
}
