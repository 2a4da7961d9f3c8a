// The registry of every diagnostic code, of every stage: the lexer and parser
// (MCL01xx), the resolver, type checker and composition (MCL02xx-04xx), the
// policy checker (MCL05xx), target selection (MCL06xx) and plan construction
// (MCL07xx). It lives in the bottom package so that every layer above (the
// compiler, the CLI, the language server) names a code instead of retyping
// it: `ctx.report(Codes.UnknownName, ...)`, `d.code === Codes.UnknownName.code`.
// A misspelt name is a type error, and spec/diagnostics.md is checked against
// this list in both directions (spec/test/diagnostics.test.ts).
//
// Codes are stable: a code, once published, keeps its meaning forever; retired
// codes are never reused. Adding a code is one line here (its name, code,
// title and, unless it is an error, its default severity; the stage follows
// from the code's prefix) plus its section in spec/diagnostics.md.

import { STAGE_PREFIX, type DiagnosticInfo, type Severity, type Stage } from './diagnostics';

const STAGE_BY_PREFIX = new Map(Object.entries(STAGE_PREFIX).map(([stage, prefix]) => [prefix, stage as Stage]));

function entry(code: string, title: string, severity: Severity = 'error'): DiagnosticInfo {
  // An unknown prefix is a mistake in this file, caught by the tests (the
  // stage then reads `plan`, and the documented stage will not match).
  return { code, stage: STAGE_BY_PREFIX.get(code.slice(0, 5)) ?? 'plan', severity, title };
}

/** Every diagnostic mcl can report, by symbolic name. */
export const Codes = {
  // Syntax: the lexer and the parser.
  InvalidCharacter: entry('MCL0101', 'Invalid character'),
  UnterminatedString: entry('MCL0102', 'Unterminated string literal'),
  UnterminatedComment: entry('MCL0103', 'Unterminated block comment'),
  InvalidEscape: entry('MCL0104', 'Invalid escape sequence in a string'),
  UnknownUnit: entry('MCL0105', 'Unknown unit on a number'),
  NumberOutOfRange: entry('MCL0106', 'Number out of range'),
  MalformedNumber: entry('MCL0107', 'Malformed number'),
  ExpectedToken: entry('MCL0108', 'Expected something that is missing'),
  UnexpectedToken: entry('MCL0109', 'Unexpected input'),
  NestingTooDeep: entry('MCL0110', 'Nesting too deep'),
  InvalidConstraint: entry('MCL0111', 'Invalid type constraint'),
  ImportAfterDeclaration: entry('MCL0112', 'Import after a declaration', 'warning'),
  WrongLiteralKind: entry('MCL0113', 'Value of the wrong kind'),
  DuplicateOrder: entry('MCL0114', 'More than one `order` clause'),
  ResponseOnOneWay: entry('MCL0115', 'Response type on a one-way operation'),
  MissingImportItems: entry('MCL0116', 'Import without items'),
  MissingComma: entry('MCL0117', 'Missing comma'),
  TooManyErrors: entry('MCL0118', 'Too many syntax errors', 'info'),
  ReservedWordAsName: entry('MCL0130', 'Reserved word used as a name'),
  PortArrayLength: entry('MCL0140', 'Port array length out of range'),
  PortIndexInvalid: entry('MCL0141', 'Invalid port array index'),
  FanOutForm: entry('MCL0142', 'Malformed fan-out connect'),
  PortIndexOutOfRange: entry('MCL0143', 'Port array index out of range'),
  NotAPortArray: entry('MCL0144', 'Index on a port that is not an array'),
  PortArrayElementNeeded: entry('MCL0145', 'Port array named without an element'),
  ProvidedPortArray: entry('MCL0146', 'Port array on a provided port'),
  FanOutLength: entry('MCL0147', 'Fan-out list length differs from the array'),

  // Resolve: modules, imports, names.
  UnknownModule: entry('MCL0201', 'Unknown module'),
  ImportedNameNotDeclared: entry('MCL0202', 'Imported name not declared in its module'),
  UnknownName: entry('MCL0203', 'Unknown name'),
  AmbiguousName: entry('MCL0204', 'Ambiguous name'),
  DuplicateDeclaration: entry('MCL0205', 'Duplicate declaration'),
  ImportCycle: entry('MCL0206', 'Import cycle'),
  ModulePathOutsideWorkspace: entry('MCL0207', 'Module path outside the workspace'),
  WrongDeclarationKind: entry('MCL0208', 'Name refers to the wrong kind of declaration'),
  ConflictingImport: entry('MCL0209', 'Conflicting import'),
  UnknownLabel: entry('MCL0210', 'Unknown label'),
  EntryFileNotFound: entry('MCL0211', 'Entry file not found'),
  UnusedImport: entry('MCL0212', 'Unused import', 'warning'),

  // Types, protocols, parameters and values.
  ConstraintNotApplicable: entry('MCL0301', 'Constraint does not apply to this type'),
  EmptyRange: entry('MCL0302', 'Empty range: minimum above maximum'),
  ConstraintBoundOutOfRange: entry('MCL0303', 'Constraint bound out of range'),
  InvalidRegex: entry('MCL0304', 'Invalid regular expression'),
  DuplicateField: entry('MCL0305', 'Duplicate record field'),
  DuplicateVariant: entry('MCL0306', 'Duplicate union variant'),
  DuplicateEnumMember: entry('MCL0307', 'Duplicate enum member'),
  RecursiveType: entry('MCL0308', 'Recursive type without a finite value'),
  DuplicateOperation: entry('MCL0309', 'Duplicate operation'),
  UnknownOrderOperation: entry('MCL0310', 'Unknown operation in order'),
  WrongValueType: entry('MCL0311', 'Value of the wrong type'),
  ConstraintViolated: entry('MCL0312', 'Value violates a constraint'),
  UnknownEnumMember: entry('MCL0313', 'Unknown enum member'),
  UnknownParameter: entry('MCL0314', 'Unknown parameter'),
  RequiredParameterNotSet: entry('MCL0315', 'Required parameter not set'),
  DuplicateParameter: entry('MCL0316', 'Duplicate parameter'),
  DuplicateConstraint: entry('MCL0317', 'Duplicate constraint'),
  EmptyEnumOrUnion: entry('MCL0318', 'Empty enum or union'),
  InvalidMapKeyType: entry('MCL0319', 'Map key type must be a string or an enum'),
  OrderAcceptsNothing: entry('MCL0320', 'Order accepts no sequence'),

  // Composition: components, systems, wiring.
  UnknownInstance: entry('MCL0401', 'Unknown instance'),
  UnknownPort: entry('MCL0402', 'Unknown port'),
  WrongConnectionDirection: entry('MCL0403', 'Connection in the wrong direction'),
  ProtocolMismatch: entry('MCL0404', 'Protocol mismatch'),
  RequiredPortWiredTwice: entry('MCL0405', 'Required port wired twice'),
  RequiredPortNotWired: entry('MCL0406', 'Required port not wired'),
  AllowedOperationNotInProtocol: entry('MCL0407', 'Allowed operation not in the protocol'),
  RequiredPortExposed: entry('MCL0408', 'Exposure of a required port'),
  HostPortExposedTwice: entry('MCL0409', 'Host port exposed twice'),
  SystemContainsItself: entry('MCL0410', 'System contains itself'),
  DuplicateMember: entry('MCL0411', 'Duplicate member'),
  InvalidComponentSetting: entry('MCL0412', 'Invalid component setting'),
  SettingOnSystemInstance: entry('MCL0413', 'Setting not allowed on a system instance'),
  SettingGivenTwice: entry('MCL0414', 'Setting given twice'),
  InvalidImageProperty: entry('MCL0415', 'Unknown or invalid image property'),
  InvalidChannelAttribute: entry('MCL0416', 'Invalid channel attribute'),
  InvalidHostPort: entry('MCL0417', 'Invalid host port'),
  InvalidDeclassification: entry('MCL0418', 'Invalid declassification'),
  AllowedOperationUnreachable: entry('MCL0419', 'Allowed operation unreachable in the order'),
  ConnectionLimitOnChannel: entry('MCL0440', 'Connection limit on a channel'),
  InvalidFactory: entry('MCL0450', 'Invalid factory port'),
  FactoryCreatesNothing: entry('MCL0451', 'Factory port without a created instance'),
  InvalidCreatedInstance: entry('MCL0452', 'Invalid created instance'),
  FactoryChannelElsewhere: entry('MCL0453', 'Factory port connected to another instance'),
  LateBoundFactory: entry('MCL0454', 'Late binding on a factory port'),
  DuplicateCandidate: entry('MCL0455', 'Candidate named twice'),

  // Policy: reachability, exposure, information flow, budgets, call cycles.
  OnlyFromViolated: entry('MCL0501', 'Channel from an instance not allowed by `only from`'),
  OnlyThroughBypassed: entry('MCL0502', 'Path that bypasses the instances of `only through`'),
  OnlyToViolated: entry('MCL0530', 'Channel to an instance not allowed by `only to`'),
  NoPathViolated: entry('MCL0503', 'Path forbidden by `no path`'),
  ExposureNotListed: entry('MCL0504', 'Exposure not in the `exposed only` list'),
  ListedPortNotExposed: entry('MCL0505', 'Listed port is not exposed', 'warning'),
  LabelOrderCycle: entry('MCL0506', 'Cycle in the label order'),
  FlowToLowerLabel: entry('MCL0507', 'Data flows to an instance with a lower label'),
  NoFlowViolated: entry('MCL0508', 'Data forbidden by `no flow` reaches the instance'),
  MemoryExceedsHost: entry('MCL0509', 'Estimated memory exceeds the target host'),
  WorstCaseMemoryExceedsHost: entry('MCL0510', 'Worst-case memory exceeds the target host', 'warning'),
  VcpusExceedHost: entry('MCL0511', 'Committed vCPUs exceed the target host'),
  MemoryBudgetExceeded: entry('MCL0512', 'System exceeds its memory budget'),
  VcpuBudgetExceeded: entry('MCL0513', 'System exceeds its vCPU budget'),
  CallCycle: entry('MCL0514', 'Cycle of call channels'),
  UnknownRuleSubject: entry('MCL0515', 'Unknown instance or system in a policy rule'),
  UnknownRuleLabel: entry('MCL0516', 'Unknown label in a policy rule'),
  UnknownExposedOnlyPort: entry('MCL0517', 'Unknown port in `exposed only`'),
  OutsideNotAllowed: entry('MCL0518', '`outside` cannot be used here'),
  InvalidBudget: entry('MCL0519', 'Invalid budget value'),
  // Egress: traffic to the outside world through the broker (spec/syntax.md, "Egress").
  EgressDestinationInvalid: entry('MCL0540', 'Invalid egress destination'),
  EgressProtocolUnsupported: entry('MCL0541', 'Protocol that cannot egress'),
  EgressSchemeMismatch: entry('MCL0542', 'Egress destination does not fit the port'),
  EgressNameTaken: entry('MCL0543', 'Egress name already used'),
  EgressFromProvidedPort: entry('MCL0544', 'Egress from a provided port'),
  EgressNotListed: entry('MCL0545', 'Egress not in the `egress only` list'),
  UnknownEgress: entry('MCL0546', 'Unknown egress in a policy rule'),
  EgressFlowViolated: entry('MCL0547', 'Labelled data leaves through an egress'),
  ApartViolated: entry('MCL0560', 'Instances that must stay apart share a host'),
  LabelOffHosts: entry('MCL0561', 'Labelled instance placed outside the hosts of `only on`'),
  UnknownRuleTarget: entry('MCL0562', 'Target in a host policy is not a target of the deploy', 'warning'),
  PolicyCheckerFailed: entry('MCL0599', 'Internal error in the policy checker'),

  // Target and backend capabilities.
  BackendCannotRealise: entry('MCL0601', 'Backend cannot realise this plan'),
  UnknownTarget: entry('MCL0602', 'Unknown target'),
  InvalidTargetProperty: entry('MCL0603', 'Invalid target property'),
  NoSystemToDeploy: entry('MCL0604', 'No system to deploy'),
  ConflictingDeploy: entry('MCL0605', 'Conflicting deploy declarations'),
  NothingToPlan: entry('MCL0606', 'Nothing to plan', 'info'),
  InstanceDoesNotFit: entry('MCL0610', 'Instance fits on none of the targets'),
  MixedTargetBackends: entry('MCL0611', 'Targets of one deploy use different backends'),
  SameHostTwice: entry('MCL0612', 'Two targets of one deploy deploy to the same place'),
  UnknownPlacement: entry('MCL0613', 'Placement names no instance or system'),
  PlacementTargetNotDeployed: entry('MCL0614', 'Placement on a target the deploy does not name'),

  // Plan construction.
  ProgramFileOutsideWorkspace: entry('MCL0701', 'Program file outside the workspace'),
  ProgramFileNotFound: entry('MCL0702', 'Program file not found'),
  InvalidProgram: entry('MCL0703', 'Invalid program'),
  ExcludedInstanceMissing: entry('MCL0704', 'Excluded instance does not exist', 'warning'),
  ChannelDroppedByExclusion: entry('MCL0705', 'Channel dropped by exclusion', 'warning'),
  DuplicateImageName: entry('MCL0706', 'Two images with the same name'),
  InternalCompilerError: entry('MCL0799', 'Internal compiler error'),
} as const satisfies Record<string, DiagnosticInfo>;

export type CodeName = keyof typeof Codes;

/** The registry as a list in code order, for documentation and SARIF rule tables. */
export const diagnosticInfos: readonly DiagnosticInfo[] = Object.values(Codes).sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));

/** The lexer's and parser's codes. */
export const syntaxDiagnosticInfos: readonly DiagnosticInfo[] = diagnosticInfos.filter((i) => i.stage === 'syntax');

const BY_CODE = new Map(diagnosticInfos.map((i) => [i.code, i]));

/** The registry entry of a code as written in a diagnostic, or undefined for a code mcl does not know. */
export function codeInfo(code: string): DiagnosticInfo | undefined {
  return BY_CODE.get(code);
}
