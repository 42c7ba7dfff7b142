"""Service scheduler: starts the Kafka consumer thread and runs the periodic tasks.

    python scheduler.py

Stops on SIGTERM or Ctrl-C: the consumer finishes its batch, commits and leaves the group.
"""
import asyncio
import logging
import os
import signal
import time

import schedule

import kafka_consumer
from consumers.notification_consumer import process_notifications
from core.config import get_settings
from database import init_db

logger = logging.getLogger("scheduler")


class Scheduler:
    def __init__(self):
        settings = get_settings()
        self.kafka_enabled = settings.KAFKA_ENABLED
        self.notifications_interval_s = settings.NOTIFICATIONS_INTERVAL_S
        self.kafka_thread = None

    def toggle_kafka(self, enable: bool) -> bool:
        """Starts (or stops) the consumer thread; the thread itself retries the connection."""
        if enable:
            kafka_consumer.stop_event.clear()
            self.kafka_thread = kafka_consumer.start_kafka_consumer()
            return self.kafka_thread is not None and self.kafka_thread.is_alive()
        kafka_consumer.stop_event.set()
        if self.kafka_thread:
            self.kafka_thread.join(timeout=15)
        return True

    def run_process_notifications(self):
        asyncio.run(process_notifications())

    def run_task1(self):
        logger.info("Running task1 (placeholder)")

    def run_task2(self):
        logger.info("Running task2 (placeholder)")

    def start(self):
        """Start the scheduler with all processors"""
        try:
            logger.info("Starting service scheduler")

            # Start Kafka consumer if enabled with retry mechanism
            if self.kafka_enabled:
                logger.debug("Attempting to start Kafka consumer...")
                if not self.toggle_kafka(True):  # This includes the retry mechanism
                    raise Exception("Failed to start Kafka consumer after maximum retries")

            # Schedule notification processing every 30 seconds
            schedule.every(self.notifications_interval_s).seconds.do(self.run_process_notifications)

            # Schedule generic tasks
            schedule.every(5).minutes.do(self.run_task1)
            schedule.every(15).minutes.do(self.run_task2)

            logger.info("All tasks scheduled successfully")

            while not kafka_consumer.stop_event.is_set():
                try:
                    # Periodic health check
                    if self.kafka_enabled and (not self.kafka_thread or not self.kafka_thread.is_alive()):
                        raise Exception("Kafka consumer thread died")

                    schedule.run_pending()
                    kafka_consumer.stop_event.wait(1)
                except Exception as e:
                    logger.error(f"Error in scheduler loop: {str(e)}")
                    # Only sleep on transient errors, re-raise critical ones
                    if "Kafka consumer thread died" in str(e):
                        raise
                    time.sleep(5)  # Prevent tight error loop
            self.toggle_kafka(False)
            logger.info("Scheduler stopped")
        except Exception as e:
            logger.error(f"Critical error in scheduler: {str(e)}")
            raise  # Re-raise the exception to notify the parent thread


def main():
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python is chatty at INFO
    init_db()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: kafka_consumer.stop_event.set())
    Scheduler().start()


if __name__ == "__main__":
    main()
