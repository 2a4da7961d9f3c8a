// Progress events and the report types of the lifecycle commands, from the
// backend contract `mclc` calls (@mcl/plan/backend).

export type {
  ApplyOptions,
  ApplyResult,
  BackendEvent,
  BackendOptions,
  ChannelStatus,
  CheckpointOptions,
  CheckpointResult,
  RestoreOptions,
  RestoreResult,
  CloneState,
  CloneStatus,
  DestroyResult,
  DoctorCheck,
  DoctorReport,
  EventSink,
  ExposureStatus,
  HelperStatus,
  InstanceStatus,
  LogLine,
  LogSink,
  LogsOptions,
  StatusReport,
  ViolationRecord,
} from '@mcl/plan/backend';
