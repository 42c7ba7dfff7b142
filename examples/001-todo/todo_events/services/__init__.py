"""The five consumer services, by consumer group."""
from .audit_log import AuditLogService
from .recurring_task import RecurringTaskWorker
from .reminder_scheduler import ReminderSchedulingWorker
from .reminder_trigger import ReminderTriggeringWorker
from .task_broadcaster import TaskUpdateBroadcaster

SERVICES = {cls.group_id: cls for cls in (RecurringTaskWorker, ReminderSchedulingWorker, ReminderTriggeringWorker,
                                          TaskUpdateBroadcaster, AuditLogService)}
