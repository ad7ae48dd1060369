# Stable private names for the managed services: manifests/overlays/<env>/managed-services.yaml points the
# in-cluster `postgres` and `redis` ExternalName services at these.
resource "aws_route53_zone" "internal" {
  name = "${var.environment}.creditops.internal"

  vpc {
    vpc_id = var.vpc_id
  }
}

resource "aws_route53_record" "postgres" {
  zone_id = aws_route53_zone.internal.zone_id
  name    = "postgres.${var.environment}.creditops.internal"
  type    = "CNAME"
  ttl     = 60
  records = [aws_db_instance.this.address]
}

resource "aws_route53_record" "redis" {
  zone_id = aws_route53_zone.internal.zone_id
  name    = "redis.${var.environment}.creditops.internal"
  type    = "CNAME"
  ttl     = 60
  records = [aws_elasticache_replication_group.this.primary_endpoint_address]
}
