// Progress events and the report types of the lifecycle commands. These
// mirror cli/src/backend.ts, the interface `mclc` calls; they are imported
// from there as types only, so the backend has no runtime dependency on the CLI.

export type {
  ApplyOptions,
  ApplyResult,
  BackendEvent,
  BackendOptions,
  ChannelStatus,
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
} from '../../../../cli/src/backend';
