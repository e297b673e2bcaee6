"""Firm-wide services over NATS JetStream: the drop copy, the audit trail, the risk view
and the firm-wide kill switch. Off the hot path: these read rings and shared memory as
any other consumer and never slow the pipeline's duty cycles."""
