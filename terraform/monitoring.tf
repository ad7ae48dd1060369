# Monitoring of the managed services: alarms on RDS and ElastiCache to an encrypted SNS topic. Model and
# service metrics (latency, errors, decisions, drift) are Prometheus's (manifests/base/prometheus).
resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.this["logs"].arn
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarms = {
    rds_cpu = {
      namespace = "AWS/RDS", metric = "CPUUtilization", stat = "Average", threshold = 80, op = "GreaterThanThreshold"
      dims      = { DBInstanceIdentifier = aws_db_instance.this.identifier }
    }
    rds_free_storage = {
      namespace = "AWS/RDS", metric = "FreeStorageSpace", stat = "Minimum", threshold = 10737418240, op = "LessThanThreshold"
      dims      = { DBInstanceIdentifier = aws_db_instance.this.identifier }
    }
    redis_memory = {
      namespace = "AWS/ElastiCache", metric = "DatabaseMemoryUsagePercentage", stat = "Maximum", threshold = 80, op = "GreaterThanThreshold"
      dims      = { ReplicationGroupId = aws_elasticache_replication_group.this.id }
    }
    redis_cpu = {
      namespace = "AWS/ElastiCache", metric = "EngineCPUUtilization", stat = "Average", threshold = 75, op = "GreaterThanThreshold"
      dims      = { ReplicationGroupId = aws_elasticache_replication_group.this.id }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${local.name}-${each.key}"
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.stat
  threshold           = each.value.threshold
  comparison_operator = each.value.op
  dimensions          = each.value.dims
  period              = 300
  evaluation_periods  = 3
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
