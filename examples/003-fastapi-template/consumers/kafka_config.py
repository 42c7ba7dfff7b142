"""Kafka consumer configuration."""
import logging
from dataclasses import dataclass

from core.config import get_settings

logger = logging.getLogger(__name__)


@dataclass
class KafkaConfig:
    """Kafka consumer configuration"""
    bootstrap_servers: str
    auto_offset_reset: str = "earliest"
    # Offsets are committed by consume_messages after each processed batch (at least once), not in
    # the background: kafka-python's auto-commit can commit a polled batch before it is processed.
    enable_auto_commit: bool = False
    group_id: str = "fastapi_template_group"
    # Pinned: kafka-python then skips probing the broker's version at start-up.
    api_version: tuple = (2, 5, 0)


def get_default_config() -> KafkaConfig:
    """Get default Kafka configuration from environment settings"""
    try:
        settings = get_settings()

        # Get Kafka server from settings
        kafka_server = settings.kafka_server()
        if not kafka_server:
            logger.warning("Kafka server not configured, using localhost:9092")
            kafka_server = "localhost:9092"

        return KafkaConfig(
            bootstrap_servers=kafka_server,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id="fastapi_template_group",
            api_version=(2, 5, 0),
        )
    except Exception as e:
        logger.error(f"Error getting Kafka config: {str(e)}")
        # Fallback to localhost
        return KafkaConfig(
            bootstrap_servers="localhost:9092",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id="fastapi_template_group",
            api_version=(2, 5, 0),
        )
