<#
The lab's check runner for Windows sandboxes (Windows PowerShell 5.1 compatible).

Same contract as lab/checks/runner.py: it executes a manifest and prints one JSON line per
result, then a last line {"end": true, "checks": n}. Parameters from a suite stay data: nothing
from the manifest is ever turned into code here (no Invoke-Expression, no script text built from
a parameter; commands run as argv through ProcessStartInfo, without a shell).

Manifest (JSON): {"format": 1, "suite": str, "root": str, "checks": [
  {"id": str, "type": str, "params": {...}, "timeout": float, "retries": int,
   optional "skip": str, optional "broken": str}, ...]}
Result line: {"id", "status", "message", "evidence", "duration_ms", "attempts"}; status is one
of pass, fail, error, skip, flaky (failed, then passed on a retry; evidence.earlier_attempts
lists the failed attempts). A pester check also reports one line per Pester test, with the id
"<check id>/<test name>", before its own line.

Framing (what the transport sends; lab/checks/powershell.py builds it):
  command line:  powershell.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass
                 -EncodedCommand <POWERSHELL_BOOTSTRAP>
  stdin:         the text of this file (ASCII, lines ending in LF or CRLF)
                 a line of exactly four NUL characters (the separator)
                 the manifest as one line of ASCII-only JSON
The bootstrap reads stdin line by line through $input (as Ansible's bootstrap does, so it
works over WinRM), dot-sources everything before the separator as one script block, then calls
  Stop-LabRunner -ExitCode (Invoke-LabManifest -Json <everything after the separator>)
Every byte on stdin and stdout is ASCII (non-ASCII characters travel as \uXXXX JSON escapes), so
no console code page can garble the exchange; the console output encoding is still set to
UTF-8 for the programs that checks start.

Exit codes: 0 the manifest ran (whatever the results), 1 the manifest was unusable (bad JSON,
unsupported format, PowerShell older than 5.1), 3 the bootstrap could not load this file.

Each attempt of a check runs in a worker runspace and is stopped after the check's timeout (plus
one second); processes the check started are killed with their children. A check that throws
is an error result, never the end of the suite.
#>

Set-StrictMode -Version 2.0

$LabFormat = 1

# The dispatch table: check type -> handler. Each handler takes -Params and -Context and returns
# New-LabOutcome; anything it throws is an error result.
$LabCheckHandlers = [ordered]@{
    'command'  = 'Test-LabCommand'
    'eventlog' = 'Test-LabEventLog'
    'file'     = 'Test-LabFile'
    'http'     = 'Test-LabHttp'
    'launch'   = 'Test-LabLaunch'
    'package'  = 'Test-LabPackage'
    'pester'   = 'Test-LabPester'
    'port'     = 'Test-LabPort'
    'process'  = 'Test-LabProcess'
    'registry' = 'Test-LabRegistry'
    'service'  = 'Test-LabService'
    'version'  = 'Test-LabVersion'
}

$LabRunnerState = @{ Runspace = $null; Abandoned = 0 }


# --- small helpers ------------------------------------------------------------------------------

# Functions that return an array do so with the unary comma (return , $array) so that it arrives
# whole. Assign their result to a variable before @(...) or a pipe: @(Get-LabParam ...) would be
# an array holding the array. tests/unit/test_runner_ps1.py checks this.

function Get-LabParam {
    param($Params, [string] $Name, $Default = $null)
    if ($null -ne $Params -and $Params.Contains($Name)) {
        return , ($Params[$Name])
    }
    return , $Default
}

function Test-LabParam {
    param($Params, [string] $Name)
    return ($null -ne $Params -and $Params.Contains($Name) -and $null -ne $Params[$Name])
}

function New-LabOutcome {
    param([string] $Status, [string] $Message, $Evidence = $null, $Extra = $null)
    if ($null -eq $Evidence) {
        $Evidence = [ordered]@{}
    }
    return @{ status = $Status; message = $Message; evidence = $Evidence; extra = $Extra }
}

function Limit-LabText {
    # As runner.py's clip(): text whose UTF-8 form fits in 48 + 16 KiB as it is; longer text as its
    # first 48 KiB and last 16 KiB around one line with its true size in bytes and its sha256.
    param([AllowNull()] [string] $Text)
    if ($null -eq $Text) {
        return $Text
    }
    $utf8 = New-Object System.Text.UTF8Encoding($false)
    $bytes = $utf8.GetBytes($Text)
    $head = 49152
    $tail = 16384
    if ($bytes.Length -le ($head + $tail)) {
        return $Text
    }
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try {
        $digest = -join ($sha.ComputeHash($bytes) | ForEach-Object { $_.ToString('x2') })
    } finally {
        $sha.Dispose()
    }
    $first = $utf8.GetString($bytes, 0, $head).TrimEnd([char]0xFFFD)
    $last = $utf8.GetString($bytes, $bytes.Length - $tail, $tail).TrimStart([char]0xFFFD)
    $marker = "`n[... clipped by the runner: {0} bytes in all, sha256 {1}; the first {2} and the last {3} bytes are shown ...]`n" -f `
        $bytes.Length, $digest, $utf8.GetByteCount($first), $utf8.GetByteCount($last)
    return $first + $marker + $last
}

function ConvertTo-LabLf {
    param([AllowNull()] [string] $Text)
    return $Text.Replace("`r`n", "`n")
}

function ConvertTo-LabNumberText {
    param([double] $Value)
    return [Math]::Round($Value, 1).ToString([System.Globalization.CultureInfo]::InvariantCulture)
}

function Test-LabMatch {
    param([AllowNull()] [string] $Text, [string] $Pattern, $Context)
    $seconds = [Math]::Max(1.0, [Math]::Min(10.0, [double]$Context['timeout']))
    $options = [System.Text.RegularExpressions.RegexOptions]::Multiline
    $regex = New-Object System.Text.RegularExpressions.Regex -ArgumentList $Pattern, $options, ([TimeSpan]::FromSeconds($seconds))
    return $regex.IsMatch($Text)
}

function Get-LabInnerException {
    param([System.Exception] $Exception)
    while (($Exception -is [System.Management.Automation.MethodInvocationException] -or
            $Exception -is [System.Reflection.TargetInvocationException]) -and $null -ne $Exception.InnerException) {
        $Exception = $Exception.InnerException
    }
    return $Exception
}

function Format-LabError {
    param($ErrorRecord)
    $exception = $ErrorRecord.Exception
    if ($exception -is [System.Management.Automation.RuntimeException] -and $exception.WasThrownFromThrowStatement) {
        return [string]$exception.Message
    }
    $exception = Get-LabInnerException -Exception $exception
    return ('{0}: {1}' -f $exception.GetType().Name, $exception.Message)
}

function Resolve-LabPath {
    param($Context, $Path)
    if (-not ($Path -is [string]) -or $Path.Length -eq 0) {
        throw ("path must be a non-empty string, got '{0}'" -f $Path)
    }
    $expanded = [Environment]::ExpandEnvironmentVariables($Path)
    $root = [string]$Context['root']
    if ($root -eq '' -or $root -eq '/' -or $root -eq '\' -or $root -match '^[A-Za-z]:[\\/]?$') {
        return $expanded
    }
    $relative = ($expanded -replace '^[A-Za-z]:', '').TrimStart([char[]]@('\', '/'))
    return [System.IO.Path]::Combine($root, $relative)
}


# --- versions (the semantics of runner.py's version_key and satisfies) --------------------------

function ConvertTo-LabVersionKey {
    param([string] $Text)
    $parts = New-Object System.Collections.ArrayList
    foreach ($piece in [regex]::Split($Text.Trim(), '[.\-+]')) {
        if ($piece -match '^[0-9]+$') {
            if ($piece.Length -gt 28) {
                throw ("version part too long: '{0}'" -f $piece)
            }
            $number = [decimal]::Parse($piece, [System.Globalization.CultureInfo]::InvariantCulture)
            [void]$parts.Add(@(0, $number, ''))
        }
        else {
            [void]$parts.Add(@(1, [decimal]0, $piece))
        }
    }
    while ($parts.Count -gt 0 -and $parts[$parts.Count - 1][0] -eq 0 -and $parts[$parts.Count - 1][1] -eq 0) {
        $parts.RemoveAt($parts.Count - 1)
    }
    return , ($parts.ToArray())
}

function Compare-LabVersionKey {
    param([object[]] $Left, [object[]] $Right)
    $count = [Math]::Min($Left.Count, $Right.Count)
    for ($i = 0; $i -lt $count; $i++) {
        $a = $Left[$i]
        $b = $Right[$i]
        if ($a[0] -ne $b[0]) {
            if ($a[0] -lt $b[0]) { return -1 }
            return 1
        }
        if ($a[1] -ne $b[1]) {
            if ($a[1] -lt $b[1]) { return -1 }
            return 1
        }
        $text = [string]::CompareOrdinal([string]$a[2], [string]$b[2])
        if ($text -ne 0) {
            if ($text -lt 0) { return -1 }
            return 1
        }
    }
    if ($Left.Count -eq $Right.Count) { return 0 }
    if ($Left.Count -lt $Right.Count) { return -1 }
    return 1
}

function Get-LabCompatibleUpperBound {
    # The exclusive upper bound of ~=Ref, as runner.py's compatible_upper_bound: 1.4.2 -> 1.5, 2.1 -> 3.
    param([string] $Ref)
    $cut = $Ref.LastIndexOf(':')
    $epoch = ''
    $rest = $Ref
    if ($cut -ge 0) {
        $epoch = $Ref.Substring(0, $cut + 1)
        $rest = $Ref.Substring($cut + 1)
    }
    $parts = $rest.Split('.')
    if ($parts.Count -lt 2) {
        throw ("~= needs at least two version parts: '{0}'" -f $Ref)
    }
    $lead = [regex]::Match($parts[$parts.Count - 2], '^[0-9]+')
    if (-not $lead.Success -or $rest.Contains('-')) {
        throw ("~= needs a plain numeric version (no revision or release): '{0}'" -f $Ref)
    }
    $kept = New-Object System.Collections.ArrayList
    for ($i = 0; $i -lt $parts.Count - 2; $i++) {
        [void]$kept.Add($parts[$i])
    }
    $culture = [System.Globalization.CultureInfo]::InvariantCulture
    [void]$kept.Add(([decimal]::Parse($lead.Value, $culture) + 1).ToString($culture))
    return $epoch + ($kept.ToArray() -join '.')
}

function Test-LabVersionConstraint {
    # True when Version meets every comma-separated clause (==, !=, >=, <=, >, <, ~=), as runner.py's satisfies.
    param([string] $Version, [string] $Constraint)
    $have = ConvertTo-LabVersionKey -Text $Version
    foreach ($raw in $Constraint.Split(',')) {
        $clause = $raw.Trim()
        if ($clause.Length -eq 0) {
            continue
        }
        $match = [regex]::Match($clause, '^(~=|==|!=|>=|<=|>|<)\s*([0-9A-Za-z.\-+:~^]+)$')
        if (-not $match.Success) {
            throw ("bad version constraint clause '{0}'" -f $clause)
        }
        $op = $match.Groups[1].Value
        $ref = $match.Groups[2].Value
        $order = Compare-LabVersionKey -Left $have -Right (ConvertTo-LabVersionKey -Text $ref)
        if ($op -eq '~=') {
            if ($order -lt 0) {
                return $false
            }
            $upper = ConvertTo-LabVersionKey -Text (Get-LabCompatibleUpperBound -Ref $ref)
            if ((Compare-LabVersionKey -Left $have -Right $upper) -ge 0) {
                return $false
            }
        }
        elseif ($op -eq '==') { if ($order -ne 0) { return $false } }
        elseif ($op -eq '!=') { if ($order -eq 0) { return $false } }
        elseif ($op -eq '>=') { if ($order -lt 0) { return $false } }
        elseif ($op -eq '<=') { if ($order -gt 0) { return $false } }
        elseif ($op -eq '>') { if ($order -le 0) { return $false } }
        elseif ($op -eq '<') { if ($order -ge 0) { return $false } }
    }
    return $true
}


# --- processes: argv, quoting, running, killing -------------------------------------------------

function Split-LabCommandLine {
    # A command line split into argv by the rules of CommandLineToArgvW (what a C program sees).
    param([string] $CommandLine)
    $arguments = New-Object System.Collections.ArrayList
    $current = New-Object System.Text.StringBuilder
    $inQuotes = $false
    $pending = $false
    $backslashes = 0
    foreach ($ch in $CommandLine.ToCharArray()) {
        if ($ch -eq [char]'\') {
            $backslashes++
            continue
        }
        if ($ch -eq [char]'"') {
            if ($backslashes -gt 1) {
                [void]$current.Append([char]'\', [int][Math]::Floor($backslashes / 2))
            }
            if ($backslashes % 2 -eq 1) {
                [void]$current.Append([char]'"')
            }
            else {
                $inQuotes = -not $inQuotes
            }
            $backslashes = 0
            $pending = $true
            continue
        }
        if ($backslashes -gt 0) {
            [void]$current.Append([char]'\', $backslashes)
            $backslashes = 0
        }
        if (($ch -eq [char]' ' -or $ch -eq [char]"`t") -and -not $inQuotes) {
            if ($pending) {
                [void]$arguments.Add($current.ToString())
                [void]$current.Clear()
                $pending = $false
            }
            continue
        }
        [void]$current.Append($ch)
        $pending = $true
    }
    if ($backslashes -gt 0) {
        [void]$current.Append([char]'\', $backslashes)
        $pending = $true
    }
    if ($pending) {
        [void]$arguments.Add($current.ToString())
    }
    return , ([string[]]$arguments.ToArray())
}

function ConvertTo-LabArgument {
    # One argument quoted so that CommandLineToArgvW gives it back unchanged.
    param([AllowEmptyString()] [string] $Argument)
    if ($Argument.Length -gt 0 -and $Argument -notmatch '[\s"]') {
        return $Argument
    }
    $builder = New-Object System.Text.StringBuilder
    [void]$builder.Append([char]'"')
    $backslashes = 0
    foreach ($ch in $Argument.ToCharArray()) {
        if ($ch -eq [char]'\') {
            $backslashes++
            continue
        }
        if ($ch -eq [char]'"') {
            [void]$builder.Append([char]'\', 2 * $backslashes + 1)
        }
        elseif ($backslashes -gt 0) {
            [void]$builder.Append([char]'\', $backslashes)
        }
        [void]$builder.Append($ch)
        $backslashes = 0
    }
    if ($backslashes -gt 0) {
        [void]$builder.Append([char]'\', 2 * $backslashes)
    }
    [void]$builder.Append([char]'"')
    return $builder.ToString()
}

function Join-LabArguments {
    param([AllowNull()] [AllowEmptyCollection()] [string[]] $Arguments)
    if ($null -eq $Arguments -or $Arguments.Count -eq 0) {
        return ''
    }
    $quoted = New-Object System.Collections.ArrayList
    foreach ($argument in $Arguments) {
        [void]$quoted.Add((ConvertTo-LabArgument -Argument $argument))
    }
    return ($quoted.ToArray() -join ' ')
}

function Get-LabArgv {
    param($Command)
    if ($null -eq $Command) {
        throw 'command is empty'
    }
    if ($Command -is [string]) {
        $argv = Split-LabCommandLine -CommandLine $Command
    }
    else {
        $list = New-Object System.Collections.ArrayList
        foreach ($item in $Command) {
            [void]$list.Add([string]$item)
        }
        $argv = [string[]]$list.ToArray()
    }
    if ($argv.Count -eq 0 -or $argv[0].Length -eq 0) {
        throw 'command is empty'
    }
    return , $argv
}

function Get-LabArgvTail {
    param([string[]] $Argv)
    if ($Argv.Count -lt 2) {
        return , ([string[]]@())
    }
    return , ([string[]]$Argv[1..($Argv.Count - 1)])
}

function Get-LabEncoding {
    param([string] $Name)
    if ($Name -eq 'utf-8') { return (New-Object System.Text.UTF8Encoding($false)) }
    if ($Name -eq 'utf-16le') { return (New-Object System.Text.UnicodeEncoding($false, $false)) }
    $culture = [System.Globalization.CultureInfo]::CurrentCulture
    if ($Name -eq 'oem') { return [System.Text.Encoding]::GetEncoding($culture.TextInfo.OEMCodePage) }
    if ($Name -eq 'ansi') { return [System.Text.Encoding]::GetEncoding($culture.TextInfo.ANSICodePage) }
    return [Console]::OutputEncoding
}

function Write-LabStdin {
    # The text as bytes of -Encoding straight to the pipe, then the pipe closed. Never through the
    # StandardInput writer: built on [Console]::InputEncoding, it may put a BOM first (or last, on Close).
    param([System.Diagnostics.Process] $Process, [AllowNull()] [string] $Text, [System.Text.Encoding] $Encoding)
    $pipe = $Process.StandardInput.BaseStream
    try {
        if ($Text.Length -gt 0) {
            $bytes = $Encoding.GetBytes($Text)  # GetBytes never adds a preamble
            $pipe.Write($bytes, 0, $bytes.Length)
            $pipe.Flush()
        }
    }
    catch {
        $null = $_  # the program exited without reading its input
    }
    finally {
        try {
            $pipe.Close()
        }
        catch {
            $null = $_
        }
    }
}

function Stop-LabProcessTree {
    # Kill a process and its children (taskkill /T), then the process itself if still there.
    param([int] $ProcessId)
    try {
        $info = New-Object System.Diagnostics.ProcessStartInfo
        $info.FileName = [System.IO.Path]::Combine([Environment]::SystemDirectory, 'taskkill.exe')
        $info.Arguments = '/PID {0} /T /F' -f $ProcessId
        $info.UseShellExecute = $false
        $info.CreateNoWindow = $true
        $info.RedirectStandardInput = $true  # never the runner's own stdin (the WinRS pipe)
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $killer = [System.Diagnostics.Process]::Start($info)
        $killer.StandardInput.BaseStream.Close()
        [void]$killer.StandardOutput.ReadToEnd()
        [void]$killer.WaitForExit(10000)
    }
    catch {
        $null = $_
    }
    try {
        $process = [System.Diagnostics.Process]::GetProcessById($ProcessId)
        if (-not $process.HasExited) {
            $process.Kill()
        }
    }
    catch {
        $null = $_
    }
}

function Resolve-LabProgram {
    # A bare program name resolved as cmd.exe would: PATHEXT order over the directories of PATH, so "deploy"
    # finds deploy.cmd or deploy.bat too (CreateProcess alone only ever appends .exe).
    param([string] $Name)
    if ($Name.IndexOfAny([char[]]@('\', '/', ':')) -ge 0 -or [System.IO.Path]::HasExtension($Name)) {
        return $Name
    }
    $found = @(Get-Command -Name $Name -CommandType Application -ErrorAction SilentlyContinue)
    if ($found.Count -gt 0) {
        return [string]$found[0].Source
    }
    return $Name
}

function ConvertTo-LabExitCode {
    # An exit code as Windows means it: an unsigned 32-bit number (0xC0000005 is 3221225477, not -1073741819).
    param($Code)
    $value = [long]$Code
    if ($value -lt 0) {
        $value += 4294967296
    }
    return $value
}

function Invoke-LabProcess {
    # Run argv without a shell; stdout and stderr are read concurrently; killed on timeout.
    param([string[]] $Argv, $Context, [AllowNull()] [string] $Stdin, $Environment, [string] $Encoding,
          [double] $Timeout)
    $decoder = Get-LabEncoding -Name $Encoding
    $info = New-Object System.Diagnostics.ProcessStartInfo
    $info.FileName = Resolve-LabProgram -Name $Argv[0]
    $info.Arguments = Join-LabArguments -Arguments (Get-LabArgvTail -Argv $Argv)
    $info.UseShellExecute = $false
    $info.CreateNoWindow = $true
    $info.RedirectStandardInput = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $info.StandardOutputEncoding = $decoder
    $info.StandardErrorEncoding = $decoder
    $root = [string]$Context['root']
    if ($root -ne '' -and $root -ne '/' -and $root -ne '\' -and [System.IO.Directory]::Exists($root)) {
        $info.WorkingDirectory = $root
    }
    if ($null -ne $Environment) {
        foreach ($key in @($Environment.Keys)) {
            $info.EnvironmentVariables[[string]$key] = [string]$Environment[$key]
        }
    }
    $process = New-Object System.Diagnostics.Process
    $process.StartInfo = $info
    try {
        [void]$process.Start()
    }
    catch {
        $reason = Get-LabInnerException -Exception $_.Exception
        throw ("cannot start {0}: {1}" -f $Argv[0], $reason.Message)
    }
    [void]$Context['children'].Add($process.Id)
    $stdoutTask = $process.StandardOutput.ReadToEndAsync()
    $stderrTask = $process.StandardError.ReadToEndAsync()
    Write-LabStdin -Process $process -Text $Stdin -Encoding $decoder
    if (-not $process.WaitForExit([int][Math]::Ceiling($Timeout * 1000))) {
        Stop-LabProcessTree -ProcessId $process.Id
        throw ("{0} timed out after {1}s" -f $Argv[0], (ConvertTo-LabNumberText $Timeout))
    }
    $streams = @{}
    foreach ($pair in @(@('stdout', $stdoutTask), @('stderr', $stderrTask))) {
        if ($pair[1].Wait(2000)) {
            $streams[$pair[0]] = [string]$pair[1].Result
        }
        else {
            $streams[$pair[0]] = '[output still open: a child process of the command holds it]'
        }
    }
    return @{ exit_code = (ConvertTo-LabExitCode $process.ExitCode); program = $info.FileName; stdout = $streams['stdout']; stderr = $streams['stderr'] }
}


# --- file ---------------------------------------------------------------------------------------

function ConvertTo-LabLongPath {
    # Paths of 260 characters and more need the \\?\ form on Windows PowerShell 5.1 (.NET Framework).
    param([string] $Path)
    if ($Path.Length -lt 248 -or $Path.StartsWith('\\?\')) {
        return $Path
    }
    $Path = $Path.Replace('/', '\')  # the \\?\ form takes no forward slashes
    if ($Path -match '^[A-Za-z]:\\') {
        return '\\?\' + $Path
    }
    if ($Path.StartsWith('\\')) {
        return '\\?\UNC\' + $Path.Substring(2)
    }
    return $Path
}

function Read-LabText {
    # A text file's content: by its BOM when it has one, as UTF-8 when its bytes are valid UTF-8, and in the
    # system's ANSI code page otherwise (Notepad's and most installers' "ANSI" files carry no BOM).
    param([string] $Path)
    $bytes = [System.IO.File]::ReadAllBytes($Path)
    $boms = @(
        @(@(0xEF, 0xBB, 0xBF), (New-Object System.Text.UTF8Encoding($false)), 'utf-8-bom'),
        @(@(0xFF, 0xFE), (New-Object System.Text.UnicodeEncoding($false, $false)), 'utf-16le'),
        @(@(0xFE, 0xFF), (New-Object System.Text.UnicodeEncoding($true, $false)), 'utf-16be')
    )
    foreach ($bom in $boms) {
        $mark = $bom[0]
        if ($bytes.Length -ge $mark.Count) {
            $same = $true
            for ($i = 0; $i -lt $mark.Count; $i++) {
                if ($bytes[$i] -ne $mark[$i]) { $same = $false }
            }
            if ($same) {
                return @{ text = $bom[1].GetString($bytes, $mark.Count, $bytes.Length - $mark.Count); encoding = $bom[2] }
            }
        }
    }
    try {
        $strict = New-Object System.Text.UTF8Encoding($false, $true)
        return @{ text = $strict.GetString($bytes); encoding = 'utf-8' }
    }
    catch {
        $ansi = [System.Text.Encoding]::GetEncoding([System.Globalization.CultureInfo]::CurrentCulture.TextInfo.ANSICodePage)
        return @{ text = $ansi.GetString($bytes); encoding = ('ansi ({0})' -f $ansi.CodePage) }
    }
}

function Get-LabSha256 {
    param([string] $Path)
    $stream = [System.IO.File]::OpenRead($Path)
    try {
        $hasher = [System.Security.Cryptography.SHA256]::Create()
        $digest = $hasher.ComputeHash($stream)
        return ([System.BitConverter]::ToString($digest) -replace '-', '').ToLowerInvariant()
    }
    finally {
        $stream.Dispose()
    }
}

function Test-LabFile {
    param($Params, $Context)
    $shown = [string](Get-LabParam $Params 'path')
    $plainPath = Resolve-LabPath -Context $Context -Path $shown
    $path = ConvertTo-LabLongPath -Path $plainPath
    $wantExists = [bool](Get-LabParam $Params 'exists' $true)
    $evidence = [ordered]@{ path = $shown }
    $isFile = [System.IO.File]::Exists($path)
    $isDirectory = [System.IO.Directory]::Exists($path)
    $evidence['exists'] = ($isFile -or $isDirectory)
    if (-not $wantExists) {
        if ($isFile -or $isDirectory) {
            return New-LabOutcome 'fail' ('{0} exists but must not' -f $shown) $evidence
        }
        return New-LabOutcome 'pass' ('{0} is absent' -f $shown) $evidence
    }
    if (-not ($isFile -or $isDirectory)) {
        return New-LabOutcome 'fail' ('{0} does not exist' -f $shown) $evidence
    }
    $kind = 'file'
    if ($isDirectory) {
        $kind = 'directory'
    }
    $evidence['kind'] = $kind
    $wantKind = Get-LabParam $Params 'kind'
    if ($null -ne $wantKind -and $wantKind -ne $kind) {
        return New-LabOutcome 'fail' ('{0} is a {1}, expected a {2}' -f $shown, $kind, $wantKind) $evidence
    }
    $wantDigest = Get-LabParam $Params 'sha256'
    $contains = Get-LabParam $Params 'contains'
    $pattern = Get-LabParam $Params 'matches'
    $wantVersion = Get-LabParam $Params 'file_version'
    if ($kind -ne 'file' -and ($null -ne $wantDigest -or $null -ne $contains -or $null -ne $pattern -or $null -ne $wantVersion)) {
        throw ('{0} is a directory: sha256/contains/matches/file_version need a file' -f $shown)
    }
    if ($kind -eq 'file') {
        $evidence['size'] = (New-Object System.IO.FileInfo($path)).Length
    }
    if ($null -ne $wantDigest) {
        $digest = Get-LabSha256 -Path $path
        $evidence['sha256'] = $digest
        if ($digest -ne ([string]$wantDigest).ToLowerInvariant()) {
            return New-LabOutcome 'fail' ('{0} has sha256 {1}, expected {2}' -f $shown, $digest, $wantDigest) $evidence
        }
    }
    if ($null -ne $contains -or $null -ne $pattern) {
        $read = Read-LabText -Path $path
        $text = ConvertTo-LabLf $read['text']
        $evidence['encoding'] = $read['encoding']
        $evidence['content'] = Limit-LabText $text
        if ($null -ne $contains -and $text.IndexOf([string]$contains, [System.StringComparison]::Ordinal) -lt 0) {
            return New-LabOutcome 'fail' ("{0} does not contain '{1}'" -f $shown, $contains) $evidence
        }
        if ($null -ne $pattern -and -not (Test-LabMatch -Text $text -Pattern $pattern -Context $Context)) {
            return New-LabOutcome 'fail' ('{0} does not match /{1}/' -f $shown, $pattern) $evidence
        }
    }
    if ($null -ne $wantVersion) {
        $info = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($plainPath)
        $version = '{0}.{1}.{2}.{3}' -f $info.FileMajorPart, $info.FileMinorPart, $info.FileBuildPart, $info.FilePrivatePart
        $evidence['file_version'] = $version
        $evidence['file_version_text'] = $info.FileVersion
        $evidence['product_version'] = $info.ProductVersion
        if ($null -eq $info.FileVersion -and $version -eq '0.0.0.0') {
            return New-LabOutcome 'fail' ('{0} has no version resource (not a PE file with VERSIONINFO)' -f $shown) $evidence
        }
        if (-not (Test-LabVersionConstraint -Version $version -Constraint ([string]$wantVersion))) {
            return New-LabOutcome 'fail' ('{0} has file version {1}, which does not satisfy {2}' -f $shown, $version, $wantVersion) $evidence
        }
    }
    return New-LabOutcome 'pass' ('{0} is as expected' -f $shown) $evidence
}


# --- registry -----------------------------------------------------------------------------------

function Split-LabRegistryKey {
    param([string] $Key)
    $pattern = '^(?:Registry::)?(HKLM|HKCU|HKCR|HKU|HKCC|HKEY_LOCAL_MACHINE|HKEY_CURRENT_USER|HKEY_CLASSES_ROOT|HKEY_USERS|HKEY_CURRENT_CONFIG):?(?:\\(.*))?$'
    $match = [regex]::Match($Key, $pattern, [System.Text.RegularExpressions.RegexOptions]::IgnoreCase)
    if (-not $match.Success) {
        throw ("registry key '{0}' must start with a hive: HKLM:\, HKCU:\, HKCR:\, HKU:\ or HKCC:\" -f $Key)
    }
    $hives = @{
        HKLM = 'LocalMachine'; HKEY_LOCAL_MACHINE = 'LocalMachine'
        HKCU = 'CurrentUser'; HKEY_CURRENT_USER = 'CurrentUser'
        HKCR = 'ClassesRoot'; HKEY_CLASSES_ROOT = 'ClassesRoot'
        HKU = 'Users'; HKEY_USERS = 'Users'
        HKCC = 'CurrentConfig'; HKEY_CURRENT_CONFIG = 'CurrentConfig'
    }
    $hive = [Microsoft.Win32.RegistryHive]$hives[$match.Groups[1].Value.ToUpperInvariant()]
    return @{ hive = $hive; path = $match.Groups[2].Value.Trim([char[]]@('\')) }
}

function ConvertFrom-LabRegistryData {
    param([string] $Kind, $Raw)
    if ($null -eq $Raw) {
        return $null
    }
    if ($Kind -eq 'DWord') {
        return [long][System.BitConverter]::ToUInt32([System.BitConverter]::GetBytes([int]$Raw), 0)
    }
    if ($Kind -eq 'QWord') {
        return [System.BitConverter]::ToUInt64([System.BitConverter]::GetBytes([long]$Raw), 0)
    }
    if ($Kind -eq 'MultiString') {
        return , ([string[]]$Raw)
    }
    if ($Raw -is [byte[]]) {
        return ([System.BitConverter]::ToString($Raw) -replace '-', '').ToLowerInvariant()
    }
    return [string]$Raw
}

function ConvertTo-LabRegistryNumber {
    param($Value)
    $text = ([string]$Value).Trim()
    if ($text -match '^0[xX][0-9a-fA-F]+$') {
        return [decimal][System.Convert]::ToUInt64($text.Substring(2), 16)
    }
    if ($text -match '^-?[0-9]+$') {
        return [decimal]::Parse($text, [System.Globalization.CultureInfo]::InvariantCulture)
    }
    throw ("registry data '{0}' is not a number (decimal or 0x hex)" -f $Value)
}

function Test-LabRegistryData {
    param([string] $Kind, $Data, $Expected)
    if ($Kind -eq 'DWord' -or $Kind -eq 'QWord') {
        return ((ConvertTo-LabRegistryNumber $Data) -eq (ConvertTo-LabRegistryNumber $Expected))
    }
    if ($Kind -eq 'MultiString') {
        $have = @($Data)
        $want = @($Expected | ForEach-Object { [string]$_ })
        if ($have.Count -ne $want.Count) {
            return $false
        }
        for ($i = 0; $i -lt $have.Count; $i++) {
            if (-not [string]::Equals([string]$have[$i], $want[$i], [System.StringComparison]::Ordinal)) {
                return $false
            }
        }
        return $true
    }
    if ($Kind -eq 'Binary') {
        $want = (([string]$Expected) -replace '^0[xX]', '' -replace '[\s,:-]', '').ToLowerInvariant()
        return [string]::Equals([string]$Data, $want, [System.StringComparison]::Ordinal)
    }
    return [string]::Equals([string]$Data, [string]$Expected, [System.StringComparison]::Ordinal)
}

function Test-LabRegistry {
    param($Params, $Context)
    $keyText = [string](Get-LabParam $Params 'key')
    $valueName = Get-LabParam $Params 'value'
    $wantExists = [bool](Get-LabParam $Params 'exists' $true)
    $wantType = Get-LabParam $Params 'value_type'
    $pattern = Get-LabParam $Params 'matches'
    $viewBits = [int](Get-LabParam $Params 'view' 64)
    $location = Split-LabRegistryKey -Key $keyText
    $view = [Microsoft.Win32.RegistryView]::Registry64
    if ($viewBits -eq 32) {
        $view = [Microsoft.Win32.RegistryView]::Registry32
    }
    $evidence = [ordered]@{ key = $keyText; view = $viewBits }
    $base = [Microsoft.Win32.RegistryKey]::OpenBaseKey($location['hive'], $view)
    $key = $null
    try {
        if ($location['path'].Length -gt 0) {
            $key = $base.OpenSubKey($location['path'])
        }
        else {
            $key = $base.OpenSubKey('')
        }
        $evidence['key_exists'] = ($null -ne $key)
        if ($null -eq $valueName) {
            if (-not $wantExists) {
                if ($null -ne $key) {
                    return New-LabOutcome 'fail' ('{0} exists but must not' -f $keyText) $evidence
                }
                return New-LabOutcome 'pass' ('{0} is absent' -f $keyText) $evidence
            }
            if ($null -eq $key) {
                return New-LabOutcome 'fail' ('{0} does not exist' -f $keyText) $evidence
            }
            $evidence['values'] = @($key.GetValueNames()).Count
            $evidence['subkeys'] = @($key.GetSubKeyNames()).Count
            return New-LabOutcome 'pass' ('{0} exists' -f $keyText) $evidence
        }
        $name = [string]$valueName
        if ($name -eq '(default)') {
            $name = ''
        }
        $label = '{0} of {1}' -f $valueName, $keyText
        $present = $false
        if ($null -ne $key) {
            $present = @($key.GetValueNames()) -contains $name
        }
        $evidence['value'] = [string]$valueName
        $evidence['value_exists'] = $present
        if (-not $wantExists) {
            if ($present) {
                return New-LabOutcome 'fail' ('{0} exists but must not' -f $label) $evidence
            }
            return New-LabOutcome 'pass' ('{0} is absent' -f $label) $evidence
        }
        if (-not $present) {
            return New-LabOutcome 'fail' ('{0} does not exist' -f $label) $evidence
        }
        $kind = $key.GetValueKind($name).ToString()
        $raw = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        $data = ConvertFrom-LabRegistryData -Kind $kind -Raw $raw
        $evidence['value_type'] = $kind
        $evidence['data'] = $data
        if ($null -ne $wantType -and $kind -ne [string]$wantType) {
            return New-LabOutcome 'fail' ('{0} is of type {1}, expected {2}' -f $label, $kind, $wantType) $evidence
        }
        if (Test-LabParam $Params 'data') {
            $expected = Get-LabParam $Params 'data'
            if (-not (Test-LabRegistryData -Kind $kind -Data $data -Expected $expected)) {
                return New-LabOutcome 'fail' ("{0} is '{1}', expected '{2}'" -f $label, (@($data) -join '|'), (@($expected) -join '|')) $evidence
            }
        }
        if ($null -ne $pattern) {
            $text = (@($data) | ForEach-Object { [string]$_ }) -join "`n"
            if (-not (Test-LabMatch -Text $text -Pattern $pattern -Context $Context)) {
                return New-LabOutcome 'fail' ('{0} does not match /{1}/' -f $label, $pattern) $evidence
            }
        }
        return New-LabOutcome 'pass' ('{0} is as expected' -f $label) $evidence
    }
    finally {
        if ($null -ne $key) {
            $key.Dispose()
        }
        $base.Dispose()
    }
}


# --- service ------------------------------------------------------------------------------------

function Get-LabServiceStartMode {
    param([string] $ServiceName)
    $base = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    try {
        $key = $base.OpenSubKey('SYSTEM\CurrentControlSet\Services\' + $ServiceName)
        if ($null -eq $key) {
            return @{ mode = 'unknown'; delayed = $false }
        }
        try {
            $start = $key.GetValue('Start', $null)
            $delayed = $key.GetValue('DelayedAutostart', 0)
        }
        finally {
            $key.Dispose()
        }
    }
    finally {
        $base.Dispose()
    }
    $modes = @{ 0 = 'boot'; 1 = 'system'; 2 = 'auto'; 3 = 'manual'; 4 = 'disabled' }
    $mode = 'unknown'
    if ($null -ne $start -and $modes.Contains([int]$start)) {
        $mode = $modes[[int]$start]
    }
    return @{ mode = $mode; delayed = ([int]$delayed -eq 1) }
}

function Test-LabService {
    param($Params, $Context)
    $name = [string](Get-LabParam $Params 'name')
    $wantExists = [bool](Get-LabParam $Params 'exists' $true)
    $wantState = Get-LabParam $Params 'state'
    $wantStart = Get-LabParam $Params 'start_mode'
    $wantRunning = Get-LabParam $Params 'running'
    $wantEnabled = Get-LabParam $Params 'enabled'
    if ($null -eq $wantState -and $null -eq $wantStart -and $null -eq $wantRunning -and $null -eq $wantEnabled) {
        $wantRunning = $true  # as on Linux: a service check without expectations means running
    }
    Assert-LabFullLanguage
    Add-Type -AssemblyName System.ServiceProcess
    $service = $null
    # GetServices() lists Win32 services only; kernel and file system drivers come from GetDevices().
    $all = @([System.ServiceProcess.ServiceController]::GetServices()) + @([System.ServiceProcess.ServiceController]::GetDevices())
    foreach ($candidate in $all) {
        if ([string]::Equals($candidate.ServiceName, $name, [System.StringComparison]::OrdinalIgnoreCase)) {
            $service = $candidate
            break
        }
    }
    $evidence = [ordered]@{ name = $name; exists = ($null -ne $service) }
    if (-not $wantExists) {
        if ($null -ne $service) {
            return New-LabOutcome 'fail' ('service {0} exists but must not' -f $name) $evidence
        }
        return New-LabOutcome 'pass' ('service {0} is absent' -f $name) $evidence
    }
    if ($null -eq $service) {
        return New-LabOutcome 'fail' ('service {0} does not exist' -f $name) $evidence
    }
    $states = @{
        Running = 'running'; Stopped = 'stopped'; Paused = 'paused'; StartPending = 'starting'
        StopPending = 'stopping'; ContinuePending = 'continuing'; PausePending = 'pausing'
    }
    $status = $service.Status.ToString()
    $state = $status.ToLowerInvariant()
    if ($states.Contains($status)) {
        $state = $states[$status]
    }
    $start = Get-LabServiceStartMode -ServiceName $service.ServiceName
    $evidence['display_name'] = $service.DisplayName
    $evidence['service_type'] = $service.ServiceType.ToString()
    $evidence['state'] = $state
    $evidence['start_mode'] = $start['mode']
    $evidence['delayed_auto_start'] = $start['delayed']
    if ($null -ne $wantState -and $state -ne [string]$wantState) {
        return New-LabOutcome 'fail' ('service {0} is {1}, expected {2}' -f $name, $state, $wantState) $evidence
    }
    if ($null -ne $wantStart -and $start['mode'] -ne [string]$wantStart) {
        return New-LabOutcome 'fail' ('service {0} starts {1}, expected {2}' -f $name, $start['mode'], $wantStart) $evidence
    }
    if ($null -ne $wantRunning -and ($state -eq 'running') -ne [bool]$wantRunning) {
        return New-LabOutcome 'fail' ('service {0} is {1}, expected it {2}' -f $name, $state, $(if ([bool]$wantRunning) { 'running' } else { 'not running' })) $evidence
    }
    # enabled means it starts with Windows: start mode auto (delayed or not), or boot/system for drivers
    $enabled = @('auto', 'boot', 'system') -contains $start['mode']
    $evidence['enabled'] = $enabled
    if ($null -ne $wantEnabled -and $enabled -ne [bool]$wantEnabled) {
        return New-LabOutcome 'fail' ('service {0} starts {1}, expected it {2}' -f $name, $start['mode'], $(if ([bool]$wantEnabled) { 'enabled (auto)' } else { 'not enabled (manual or disabled)' })) $evidence
    }
    return New-LabOutcome 'pass' ('service {0} is {1}, start mode {2}' -f $name, $state, $start['mode']) $evidence
}


# --- package (the Uninstall keys, 64- and 32-bit views, machine and user) -----------------------

function Get-LabUserHives {
    # The SIDs of the user hives loaded under HKEY_USERS: the WinRM account's own and those of the users
    # logged on (RDS sessions). HKCU would be the WinRM account's alone; a logged-off user's hive is not loaded.
    $users = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::Users, [Microsoft.Win32.RegistryView]::Registry64)
    try {
        return , ([string[]]@($users.GetSubKeyNames() | Where-Object { $_ -match '^S-1-5-21-[0-9-]+$' }))
    }
    finally {
        $users.Dispose()
    }
}

function Get-LabUninstallEntries {
    $uninstall = 'SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall'
    $locations = New-Object System.Collections.ArrayList
    [void]$locations.Add(@('LocalMachine', $uninstall, ('HKLM:\' + $uninstall)))
    [void]$locations.Add(@('LocalMachine', 'SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall',
                           'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall'))
    $hives = Get-LabUserHives
    foreach ($sid in $hives) {
        [void]$locations.Add(@('Users', ($sid + '\' + $uninstall), ('HKU:\' + $sid + '\' + $uninstall)))
    }
    $entries = New-Object System.Collections.ArrayList
    foreach ($location in $locations) {
        $base = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]$location[0],
                                                           [Microsoft.Win32.RegistryView]::Registry64)
        try {
            $parent = $base.OpenSubKey($location[1])
            if ($null -eq $parent) {
                continue
            }
            try {
                foreach ($subName in $parent.GetSubKeyNames()) {
                    $sub = $parent.OpenSubKey($subName)
                    if ($null -eq $sub) {
                        continue
                    }
                    try {
                        [void]$entries.Add([ordered]@{
                            product_id = $subName
                            name       = [string]$sub.GetValue('DisplayName', '')
                            version    = [string]$sub.GetValue('DisplayVersion', '')
                            publisher  = [string]$sub.GetValue('Publisher', '')
                            windows_installer = ([int]$sub.GetValue('WindowsInstaller', 0) -eq 1)
                            quiet_uninstall = ($null -ne $sub.GetValue('QuietUninstallString', $null))
                            location   = $location[2]
                        })
                    }
                    finally {
                        $sub.Dispose()
                    }
                }
            }
            finally {
                $parent.Dispose()
            }
        }
        finally {
            $base.Dispose()
        }
    }
    return , ($entries.ToArray())
}

function ConvertTo-LabProductId {
    param([string] $Text)
    return $Text.Trim().Trim([char[]]@('{', '}')).ToUpperInvariant()
}

function Test-LabPackage {
    param($Params, $Context)
    $productId = Get-LabParam $Params 'product_id'
    $name = Get-LabParam $Params 'name'
    $namePattern = Get-LabParam $Params 'name_matches'
    $constraint = Get-LabParam $Params 'version'
    $wantInstalled = [bool](Get-LabParam $Params 'installed' $true)
    if ($null -eq $productId -and $null -eq $name -and $null -eq $namePattern) {
        throw 'package check needs name, name_matches or product_id'
    }
    $label = @($productId, $name, $namePattern | Where-Object { $null -ne $_ })[0]
    $found = New-Object System.Collections.ArrayList
    foreach ($entry in (Get-LabUninstallEntries)) {
        if ($null -ne $productId -and (ConvertTo-LabProductId $entry['product_id']) -ne (ConvertTo-LabProductId ([string]$productId))) {
            continue
        }
        if ($null -ne $name -and -not [string]::Equals($entry['name'], [string]$name, [System.StringComparison]::OrdinalIgnoreCase)) {
            continue
        }
        if ($null -ne $namePattern -and -not (Test-LabMatch -Text $entry['name'] -Pattern $namePattern -Context $Context)) {
            continue
        }
        [void]$found.Add($entry)
    }
    $evidence = [ordered]@{ product_id = $productId; name = $name; name_matches = $namePattern }
    $evidence['found'] = @($found.ToArray() | Select-Object -First 20)
    # per-user installs are seen only in the hives loaded now (the WinRM account, users logged on)
    $evidence['user_hives'] = Get-LabUserHives
    if (-not $wantInstalled) {
        if ($found.Count -gt 0) {
            return New-LabOutcome 'fail' ('{0} is installed ({1}) but must not be' -f $label, $found[0]['version']) $evidence
        }
        return New-LabOutcome 'pass' ('{0} is not installed' -f $label) $evidence
    }
    if ($found.Count -eq 0) {
        return New-LabOutcome 'fail' ('{0} is not installed' -f $label) $evidence
    }
    if ($null -ne $constraint) {
        $evidence['constraint'] = $constraint
        foreach ($entry in $found) {
            if (Test-LabVersionConstraint -Version $entry['version'] -Constraint ([string]$constraint)) {
                return New-LabOutcome 'pass' ('{0} {1} satisfies {2}' -f $label, $entry['version'], $constraint) $evidence
            }
        }
        $versions = (@($found | ForEach-Object { $_['version'] }) -join ', ')
        return New-LabOutcome 'fail' ('{0} {1} does not satisfy {2}' -f $label, $versions, $constraint) $evidence
    }
    return New-LabOutcome 'pass' ('{0} {1} is installed' -f $label, $found[0]['version']) $evidence
}


# --- process ------------------------------------------------------------------------------------

function Test-LabProcess {
    param($Params, $Context)
    $wantRunning = [bool](Get-LabParam $Params 'running' $true)
    $pidFile = Get-LabParam $Params 'pid_file'
    $name = Get-LabParam $Params 'name'
    $running = New-Object System.Collections.ArrayList
    if ($null -ne $pidFile) {
        $evidence = [ordered]@{ pid_file = $pidFile }
        $processId = 0
        try {
            $text = [System.IO.File]::ReadAllText((Resolve-LabPath -Context $Context -Path ([string]$pidFile))).Trim()
            if ($text -match '^[0-9]+$') {
                $processId = [int]$text
            }
        }
        catch {
            $processId = 0
        }
        $evidence['pid'] = $processId
        if ($processId -gt 0) {
            try {
                $process = [System.Diagnostics.Process]::GetProcessById($processId)
                $alive = $true
                try {
                    $alive = -not $process.HasExited
                }
                catch {
                    $alive = $true  # a protected process: it exists, its state cannot be read
                }
                if ($alive) {
                    [void]$running.Add($processId)
                }
            }
            catch {
                $null = $_  # no such process
            }
        }
        $label = [string]$pidFile
    }
    elseif ($null -ne $name) {
        $bare = ([string]$name) -replace '\.exe$', ''
        $evidence = [ordered]@{ name = $name }
        foreach ($process in [System.Diagnostics.Process]::GetProcessesByName($bare)) {
            [void]$running.Add($process.Id)
        }
        $label = [string]$name
    }
    else {
        throw 'process check needs name or pid_file'
    }
    $pids = @($running.ToArray() | Sort-Object)
    $evidence['running_pids'] = $pids
    if ($wantRunning -and $pids.Count -eq 0) {
        return New-LabOutcome 'fail' ('{0} is not running' -f $label) $evidence
    }
    if (-not $wantRunning -and $pids.Count -gt 0) {
        return New-LabOutcome 'fail' ('{0} is running (pid {1}) but must not' -f $label, $pids[0]) $evidence
    }
    $state = 'not running'
    if ($pids.Count -gt 0) {
        $state = 'running'
    }
    return New-LabOutcome 'pass' ('{0} is {1}' -f $label, $state) $evidence
}


# --- port ---------------------------------------------------------------------------------------

function Get-LabListenersFromNetstat {
    param([int] $Port, $Context)
    $argv = [string[]]@([System.IO.Path]::Combine([Environment]::SystemDirectory, 'netstat.exe'), '-a', '-n', '-o')
    $run = Invoke-LabProcess -Argv $argv -Context $Context -Stdin '' -Environment $null -Encoding 'oem' -Timeout ([Math]::Min(20.0, [double]$Context['timeout']))
    $found = New-Object System.Collections.ArrayList
    foreach ($line in ([string]$run['stdout']).Split([char[]]@("`r", "`n"))) {
        $fields = @($line.Trim() -split '\s+')
        # TCP <local> <foreign> <state> <pid>: a listening socket has foreign port 0 in any language.
        if ($fields.Count -lt 4 -or $fields[0] -ne 'TCP') {
            continue
        }
        $local = $fields[1]
        $localPort = $local.Substring($local.LastIndexOf(':') + 1)
        if ($localPort -eq [string]$Port -and $fields[2] -match ':0$') {
            [void]$found.Add([ordered]@{ address = $local.Substring(0, $local.LastIndexOf(':')); pid = $fields[$fields.Count - 1] })
        }
    }
    return , ($found.ToArray())
}

function Test-LabPort {
    param($Params, $Context)
    $port = [int](Get-LabParam $Params 'port')
    $hostName = [string](Get-LabParam $Params 'host' '127.0.0.1')
    $want = [bool](Get-LabParam $Params 'listening' $true)
    $listeners = $null
    $method = 'Get-NetTCPConnection'
    if ($null -ne (Get-Command -Name 'Get-NetTCPConnection' -ErrorAction SilentlyContinue)) {
        try {
            $found = New-Object System.Collections.ArrayList
            foreach ($connection in @(Get-NetTCPConnection -State Listen -ErrorAction Stop)) {
                if ([int]$connection.LocalPort -eq $port) {
                    [void]$found.Add([ordered]@{ address = [string]$connection.LocalAddress; pid = [int]$connection.OwningProcess })
                }
            }
            $listeners = $found.ToArray()
        }
        catch {
            $listeners = $null
        }
    }
    if ($null -eq $listeners) {
        $method = 'netstat'
        $listeners = Get-LabListenersFromNetstat -Port $port -Context $Context
    }
    $listening = (@($listeners).Count -gt 0)
    $evidence = [ordered]@{ port = $port; host = $hostName; listening = $listening; method = $method; listeners = @($listeners) }
    $state = 'not listening'
    if ($listening) {
        $state = 'listening'
    }
    if ($listening -ne $want) {
        return New-LabOutcome 'fail' ('port {0} is {1}' -f $port, $state) $evidence
    }
    return New-LabOutcome 'pass' ('port {0} is {1}' -f $port, $state) $evidence
}


# --- http ---------------------------------------------------------------------------------------

function Initialize-LabTls {
    # The certificate policies for tls_verify: false and ca_file.
    $source = @'
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

public static class LabTlsPolicy
{
    public static RemoteCertificateValidationCallback AcceptAny()
    {
        return delegate(object sender, X509Certificate certificate, X509Chain chain, SslPolicyErrors errors) { return true; };
    }

    public static RemoteCertificateValidationCallback TrustOnly(string caFile)
    {
        X509Certificate2 ca = new X509Certificate2(caFile);
        return delegate(object sender, X509Certificate certificate, X509Chain chain, SslPolicyErrors errors)
        {
            if (certificate == null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) { return false; }
            X509Chain custom = new X509Chain();
            custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            custom.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
            custom.ChainPolicy.ExtraStore.Add(ca);
            if (!custom.Build(new X509Certificate2(certificate))) { return false; }
            X509ChainElement top = custom.ChainElements[custom.ChainElements.Count - 1];
            return top.Certificate.Thumbprint == ca.Thumbprint;
        };
    }
}
'@
    return Import-LabType -Name 'LabTlsPolicy' -Source $source
}

function Set-LabHeader {
    # HttpWebRequest refuses its restricted headers in Headers[]: each has a property of its own.
    param([System.Net.HttpWebRequest] $Request, [string] $Name, [string] $Value)
    $culture = [System.Globalization.CultureInfo]::InvariantCulture
    switch ($Name.ToLowerInvariant()) {
        'accept' { $Request.Accept = $Value }
        'user-agent' { $Request.UserAgent = $Value }
        'content-type' { $Request.ContentType = $Value }
        'referer' { $Request.Referer = $Value }
        'host' { $Request.Host = $Value }
        'connection' {
            if ($Value -match '^\s*close\s*$') { $Request.KeepAlive = $false }
            elseif ($Value -notmatch '^\s*keep-alive\s*$') { $Request.Connection = $Value }
        }
        'content-length' { $Request.ContentLength = [long]::Parse($Value, $culture) }
        'date' { $Request.Date = [DateTime]::Parse($Value, $culture, [System.Globalization.DateTimeStyles]::AdjustToUniversal) }
        'expect' { $Request.Expect = $Value }
        'if-modified-since' { $Request.IfModifiedSince = [DateTime]::Parse($Value, $culture, [System.Globalization.DateTimeStyles]::AdjustToUniversal) }
        'range' {
            $range = [regex]::Match($Value, '^\s*(\w+)=(\d+)-(\d*)\s*$')
            if (-not $range.Success) {
                throw ("header Range '{0}' must be unit=from-[to]" -f $Value)
            }
            if ($range.Groups[3].Value -eq '') {
                $Request.AddRange($range.Groups[1].Value, [long]$range.Groups[2].Value)
            }
            else {
                $Request.AddRange($range.Groups[1].Value, [long]$range.Groups[2].Value, [long]$range.Groups[3].Value)
            }
        }
        'transfer-encoding' {
            if ($Value -notmatch '^\s*chunked\s*$') {
                $Request.SendChunked = $true
                $Request.TransferEncoding = $Value
            }
            else {
                $Request.SendChunked = $true
            }
        }
        'proxy-connection' { throw 'header Proxy-Connection cannot be set: the check connects directly, without a proxy' }
        default { $Request.Headers[$Name] = $Value }
    }
}

function Get-LabResponseEncoding {
    # The charset the response declares (Content-Type), UTF-8 when it declares none or an unknown one.
    param([System.Net.WebResponse] $Response)
    $type = [string]$Response.ContentType
    $match = [regex]::Match($type, 'charset\s*=\s*"?([^";\s]+)', [System.Text.RegularExpressions.RegexOptions]::IgnoreCase)
    if ($match.Success) {
        try {
            return [System.Text.Encoding]::GetEncoding($match.Groups[1].Value)
        }
        catch {
            $null = $_
        }
    }
    return (New-Object System.Text.UTF8Encoding($false))
}

function Read-LabResponseBody {
    param([System.Net.WebResponse] $Response, [int] $Limit)
    $stream = $Response.GetResponseStream()
    if ($null -eq $stream) {
        return ''
    }
    # a BOM in the body still wins (detectEncodingFromByteOrderMarks)
    $reader = New-Object System.IO.StreamReader($stream, (Get-LabResponseEncoding -Response $Response), $true)
    try {
        $buffer = New-Object 'char[]' 8192
        $body = New-Object System.Text.StringBuilder
        while ($body.Length -lt $Limit) {
            $count = $reader.Read($buffer, 0, $buffer.Length)
            if ($count -le 0) {
                break
            }
            [void]$body.Append($buffer, 0, $count)
        }
        return $body.ToString()
    }
    finally {
        $reader.Dispose()
    }
}

function Test-LabHttp {
    param($Params, $Context)
    $url = [string](Get-LabParam $Params 'url')
    if ($url -notmatch '^https?://') {
        throw ("url must start with http:// or https://, got '{0}'" -f $url)
    }
    $statusParam = Get-LabParam $Params 'status' 200
    $wanted = @(@($statusParam) | ForEach-Object { [int]$_ })
    $method = [string](Get-LabParam $Params 'method' 'GET')
    $headers = Get-LabParam $Params 'headers'
    $bodyPattern = Get-LabParam $Params 'body'
    $follow = [bool](Get-LabParam $Params 'follow_redirects' $true)
    $verify = [bool](Get-LabParam $Params 'tls_verify' $true)
    $caFile = Get-LabParam $Params 'ca_file'
    $seconds = [Math]::Min([double](Get-LabParam $Params 'timeout' $Context['timeout']), [double]$Context['timeout'])
    $request = [System.Net.HttpWebRequest]([System.Net.WebRequest]::Create($url))
    $request.Method = $method
    $request.Timeout = [int][Math]::Ceiling($seconds * 1000)
    $request.ReadWriteTimeout = $request.Timeout
    $request.AllowAutoRedirect = $follow
    # Directly, never through the WinRM account's proxy settings: the check is about the sandbox's own service.
    $request.Proxy = $null
    if ($null -ne $headers) {
        foreach ($headerName in @($headers.Keys)) {
            Set-LabHeader -Request $request -Name ([string]$headerName) -Value ([string]$headers[$headerName])
        }
    }
    if ($url -match '^https://') {
        $protocols = [System.Net.ServicePointManager]::SecurityProtocol
        $tls12 = [System.Net.SecurityProtocolType]::Tls12
        if ([int]$protocols -ne 0 -and ([int]($protocols -band $tls12)) -eq 0) {
            [System.Net.ServicePointManager]::SecurityProtocol = $protocols -bor $tls12
        }
        if (-not $verify) {
            $policy = Initialize-LabTls
            $request.ServerCertificateValidationCallback = $policy::AcceptAny()
        }
        elseif ($null -ne $caFile) {
            $policy = Initialize-LabTls
            $request.ServerCertificateValidationCallback = $policy::TrustOnly((Resolve-LabPath -Context $Context -Path ([string]$caFile)))
        }
    }
    $response = $null
    try {
        $response = $request.GetResponse()
    }
    catch {
        $problem = Get-LabInnerException -Exception $_.Exception
        if ($problem -is [System.Net.WebException] -and $null -ne $problem.Response) {
            $response = $problem.Response
        }
        else {
            $reason = $problem.Message
            if ($problem -is [System.Net.WebException]) {
                $reason = '{0} ({1})' -f $problem.Message, $problem.Status
            }
            return New-LabOutcome 'fail' ('{0} unreachable: {1}' -f $url, $reason) ([ordered]@{ url = $url; error = $reason })
        }
    }
    try {
        $status = [int]$response.StatusCode
        $text = ConvertTo-LabLf (Read-LabResponseBody -Response $response -Limit (4 * 65536))
    }
    finally {
        $response.Close()
    }
    $evidence = [ordered]@{ url = $url; status = $status; body = (Limit-LabText $text) }
    if ($wanted -notcontains $status) {
        return New-LabOutcome 'fail' ('{0} answered {1}, expected {2}' -f $url, $status, ($wanted -join '/')) $evidence
    }
    if ($null -ne $bodyPattern -and -not (Test-LabMatch -Text $text -Pattern $bodyPattern -Context $Context)) {
        return New-LabOutcome 'fail' ('body of {0} does not match /{1}/' -f $url, $bodyPattern) $evidence
    }
    return New-LabOutcome 'pass' ('{0} answered {1}' -f $url, $status) $evidence
}


# --- command ------------------------------------------------------------------------------------

function Test-LabCommand {
    param($Params, $Context)
    $command = Get-LabParam $Params 'command'
    $argv = Get-LabArgv -Command $command
    $stdin = [string](Get-LabParam $Params 'stdin' '')
    $environment = Get-LabParam $Params 'env'
    $encoding = [string](Get-LabParam $Params 'output_encoding' 'console')
    $want = ConvertTo-LabExitCode (Get-LabParam $Params 'exit_code' 0)
    $run = Invoke-LabProcess -Argv $argv -Context $Context -Stdin $stdin -Environment $environment -Encoding $encoding -Timeout ([double]$Context['timeout'])
    $stdout = ConvertTo-LabLf $run['stdout']
    $stderr = ConvertTo-LabLf $run['stderr']
    $evidence = [ordered]@{
        command   = $command
        argv      = $argv
        program   = $run['program']
        exit_code = $run['exit_code']
        exit_code_hex = ('0x{0:X8}' -f $run['exit_code'])
        stdout    = (Limit-LabText $stdout)
        stderr    = (Limit-LabText $stderr)
    }
    if ($run['exit_code'] -ne $want) {
        return New-LabOutcome 'fail' ('exit code {0}, expected {1}' -f $run['exit_code'], $want) $evidence
    }
    foreach ($stream in @(@('stdout', 'stdout_not', $stdout), @('stderr', 'stderr_not', $stderr))) {
        $pattern = Get-LabParam $Params $stream[0]
        if ($null -ne $pattern -and -not (Test-LabMatch -Text $stream[2] -Pattern $pattern -Context $Context)) {
            return New-LabOutcome 'fail' ('{0} does not match /{1}/' -f $stream[0], $pattern) $evidence
        }
        $forbidden = Get-LabParam $Params $stream[1]
        if ($null -ne $forbidden -and (Test-LabMatch -Text $stream[2] -Pattern $forbidden -Context $Context)) {
            return New-LabOutcome 'fail' ('{0} matches /{1}/ but must not' -f $stream[0], $forbidden) $evidence
        }
    }
    return New-LabOutcome 'pass' ('exit code {0} as expected' -f $run['exit_code']) $evidence
}


# --- version ------------------------------------------------------------------------------------

function Read-LabDeployRecord {
    # What deploy.yml wrote for a product (%ProgramData%\lab\installed\<product>.json) as a dictionary; null if none.
    param($Context, [string] $Product)
    if ($Product -notmatch '^[A-Za-z0-9][A-Za-z0-9._-]*$') {
        throw ("product name '{0}' cannot name a file" -f $Product)
    }
    $path = Resolve-LabPath -Context $Context -Path ([System.IO.Path]::Combine($env:ProgramData, 'lab\installed\' + $Product + '.json'))
    if (-not [System.IO.File]::Exists($path)) {
        return $null
    }
    try {
        $document = ConvertTo-LabPlain -InputObject (ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($path)))
    }
    catch {
        throw ('the deploy record {0} is not valid JSON: {1}' -f $path, $_.Exception.Message)
    }
    if (-not ($document -is [System.Collections.IDictionary])) {
        throw ('the deploy record {0} is not a JSON object' -f $path)
    }
    return $document
}

function Test-LabVersion {
    param($Params, $Context)
    $product = [string](Get-LabParam $Params 'product')
    $constraint = [string](Get-LabParam $Params 'constraint')
    $pattern = [string](Get-LabParam $Params 'regex' '(\d+(?:\.\d+)+)')
    $version = $null
    $text = $null
    $source = $null
    $record = $null
    if (Test-LabParam $Params 'command') {
        $argv = Get-LabArgv -Command (Get-LabParam $Params 'command')
        $run = Invoke-LabProcess -Argv $argv -Context $Context -Stdin '' -Environment $null -Encoding 'console' -Timeout ([double]$Context['timeout'])
        $text = [string]$run['stdout'] + [string]$run['stderr']
    }
    elseif (Test-LabParam $Params 'file') {
        $path = Resolve-LabPath -Context $Context -Path ([string](Get-LabParam $Params 'file'))
        if ([System.IO.File]::Exists($path)) {
            $text = [System.IO.File]::ReadAllText($path)
        }
    }
    else {
        # The installed product's own version: the DisplayVersion of its Uninstall key, found by the product id
        # that deploy.yml records in %ProgramData%\lab\installed\<product>.json. The version in that record
        # is what the lab asked for, not what is installed (win_package skips a product already present).
        $record = Read-LabDeployRecord -Context $Context -Product $product
        $source = 'uninstall key'
        if ($null -ne $record -and $null -ne $record['product_id']) {
            $wanted = ConvertTo-LabProductId ([string]$record['product_id'])
            foreach ($entry in (Get-LabUninstallEntries)) {
                if ((ConvertTo-LabProductId $entry['product_id']) -eq $wanted -and $entry['version'] -ne '') {
                    $version = $entry['version']
                    break
                }
            }
        }
    }
    if ($null -ne $text) {
        $match = [regex]::Match($text, $pattern)
        if ($match.Success) {
            if ($match.Groups.Count -lt 2) {
                throw ("regex /{0}/ has no capture group for the version" -f $pattern)
            }
            $version = $match.Groups[1].Value
        }
    }
    $evidence = [ordered]@{ product = $product; installed = $version; constraint = $constraint }
    if ($null -ne $source) {
        $evidence['source'] = $source
        if ($null -eq $record) {
            return New-LabOutcome 'fail' ('{0} has no deploy record (%ProgramData%\lab\installed\{0}.json): it was never deployed here' -f $product) $evidence
        }
        $evidence['product_id'] = $record['product_id']
        $evidence['recorded_version'] = $record['version']
        if ($null -eq $version) {
            return New-LabOutcome 'fail' ('{0} was deployed as {1} (product id {2}) but no Uninstall key of that product id has a DisplayVersion: it is not installed' -f $product, $record['version'], $record['product_id']) $evidence
        }
    }
    if ($null -eq $version) {
        return New-LabOutcome 'fail' ('{0} is not installed (no version found)' -f $product) $evidence
    }
    if (-not (Test-LabVersionConstraint -Version $version -Constraint $constraint)) {
        return New-LabOutcome 'fail' ('{0} {1} does not satisfy {2}' -f $product, $version, $constraint) $evidence
    }
    return New-LabOutcome 'pass' ('{0} {1} satisfies {2}' -f $product, $version, $constraint) $evidence
}


# --- launch -------------------------------------------------------------------------------------

function Initialize-LabJob {
    # A Windows job object: every process the launched program starts joins it, so its whole tree is
    # counted (memory, live processes) and killed together (TerminateJobObject, and KILL_ON_JOB_CLOSE).
    $source = @'
using System;
using System.ComponentModel;
using System.Runtime.InteropServices;

public sealed class LabJob : IDisposable
{
    [StructLayout(LayoutKind.Sequential)]
    struct BasicLimit
    {
        public long PerProcessUserTimeLimit; public long PerJobUserTimeLimit; public uint LimitFlags;
        public UIntPtr MinimumWorkingSetSize; public UIntPtr MaximumWorkingSetSize; public uint ActiveProcessLimit;
        public UIntPtr Affinity; public uint PriorityClass; public uint SchedulingClass;
    }

    [StructLayout(LayoutKind.Sequential)]
    struct IoCounters
    {
        public ulong ReadOperationCount; public ulong WriteOperationCount; public ulong OtherOperationCount;
        public ulong ReadTransferCount; public ulong WriteTransferCount; public ulong OtherTransferCount;
    }

    [StructLayout(LayoutKind.Sequential)]
    struct ExtendedLimit
    {
        public BasicLimit Basic; public IoCounters Io; public UIntPtr ProcessMemoryLimit; public UIntPtr JobMemoryLimit;
        public UIntPtr PeakProcessMemoryUsed; public UIntPtr PeakJobMemoryUsed;
    }

    [StructLayout(LayoutKind.Sequential)]
    struct BasicAccounting
    {
        public long TotalUserTime; public long TotalKernelTime; public long ThisPeriodTotalUserTime;
        public long ThisPeriodTotalKernelTime; public uint TotalPageFaultCount; public uint TotalProcesses;
        public uint ActiveProcesses; public uint TotalTerminatedProcesses;
    }

    const int BasicAccountingInformation = 1;
    const int BasicProcessIdList = 3;
    const int ExtendedLimitInformation = 9;
    const uint KillOnJobClose = 0x2000;

    [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    static extern IntPtr CreateJobObject(IntPtr attributes, string name);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool AssignProcessToJobObject(IntPtr job, IntPtr process);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool SetInformationJobObject(IntPtr job, int infoClass, ref ExtendedLimit info, int length);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool QueryInformationJobObject(IntPtr job, int infoClass, out ExtendedLimit info, int length, IntPtr returned);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool QueryInformationJobObject(IntPtr job, int infoClass, out BasicAccounting info, int length, IntPtr returned);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool QueryInformationJobObject(IntPtr job, int infoClass, IntPtr info, int length, IntPtr returned);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool TerminateJobObject(IntPtr job, uint exitCode);
    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool CloseHandle(IntPtr handle);

    IntPtr handle;

    public LabJob()
    {
        handle = CreateJobObject(IntPtr.Zero, null);
        if (handle == IntPtr.Zero) { throw new Win32Exception(); }
        ExtendedLimit limit = new ExtendedLimit();
        limit.Basic.LimitFlags = KillOnJobClose;
        if (!SetInformationJobObject(handle, ExtendedLimitInformation, ref limit, Marshal.SizeOf(typeof(ExtendedLimit))))
        {
            throw new Win32Exception();
        }
    }

    public void Add(IntPtr process)
    {
        if (!AssignProcessToJobObject(handle, process)) { throw new Win32Exception(); }
    }

    public long PeakJobMemory
    {
        get
        {
            ExtendedLimit info;
            if (!QueryInformationJobObject(handle, ExtendedLimitInformation, out info, Marshal.SizeOf(typeof(ExtendedLimit)), IntPtr.Zero))
            {
                throw new Win32Exception();
            }
            return (long)info.PeakJobMemoryUsed.ToUInt64();
        }
    }

    public int ActiveProcesses
    {
        get
        {
            BasicAccounting info;
            if (!QueryInformationJobObject(handle, BasicAccountingInformation, out info, Marshal.SizeOf(typeof(BasicAccounting)), IntPtr.Zero))
            {
                throw new Win32Exception();
            }
            return (int)info.ActiveProcesses;
        }
    }

    public int[] ProcessIds()
    {
        const int capacity = 1024;
        int size = 8 + capacity * IntPtr.Size;
        IntPtr buffer = Marshal.AllocHGlobal(size);
        try
        {
            if (!QueryInformationJobObject(handle, BasicProcessIdList, buffer, size, IntPtr.Zero)) { throw new Win32Exception(); }
            int count = Marshal.ReadInt32(buffer, 4);
            int[] ids = new int[count];
            for (int i = 0; i < count; i++) { ids[i] = (int)Marshal.ReadIntPtr(buffer, 8 + i * IntPtr.Size).ToInt64(); }
            return ids;
        }
        finally
        {
            Marshal.FreeHGlobal(buffer);
        }
    }

    public void Kill()
    {
        if (handle != IntPtr.Zero) { TerminateJobObject(handle, 1); }
    }

    public void Dispose()
    {
        if (handle != IntPtr.Zero) { CloseHandle(handle); handle = IntPtr.Zero; }
    }
}
'@
    return Import-LabType -Name 'LabJob' -Source $source
}

function Get-LabTreeWorkingSet {
    # The working sets of every live process of the job, added up (bytes).
    param($Job)
    $total = [long]0
    foreach ($id in $Job.ProcessIds()) {
        try {
            $total += [long]([System.Diagnostics.Process]::GetProcessById($id).WorkingSet64)
        }
        catch {
            $null = $_  # exited between the list and the read
        }
    }
    return $total
}

function Test-LabLaunch {
    # Start a program with its streams redirected (its output can never reach the runner's stdout), in a job
    # object that holds its whole process tree: "alive" means some process of the tree still runs, memory is
    # the tree's, and the whole tree is killed at the end. Under WinRS the program runs in the WinRM
    # account's non-interactive session (session 0 on a server, no desktop): this proves that the program
    # starts, survives and stays within a memory budget, not that its window or UI works for an RDS user.
    param($Params, $Context)
    Assert-LabFullLanguage
    $command = Get-LabParam $Params 'command'
    $argv = Get-LabArgv -Command $command
    $alive = [double](Get-LabParam $Params 'alive' 5)
    $budget = Get-LabParam $Params 'max_memory_mb'
    $timeout = [double]$Context['timeout']
    if ($alive + 1.0 -ge $timeout) {
        throw ('alive ({0}s) must be at least a second shorter than the check timeout ({1}s)' -f (ConvertTo-LabNumberText $alive), (ConvertTo-LabNumberText $timeout))
    }
    $jobType = Initialize-LabJob
    $program = Resolve-LabProgram -Name $argv[0]
    $info = New-Object System.Diagnostics.ProcessStartInfo
    $info.FileName = $program
    $info.Arguments = Join-LabArguments -Arguments (Get-LabArgvTail -Argv $argv)
    $info.UseShellExecute = $false
    $info.RedirectStandardInput = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $evidence = [ordered]@{ command = $command; argv = $argv; program = $program; alive_s = $alive }
    if ($null -ne $budget) {
        $evidence['max_memory_mb'] = $budget
    }
    $job = New-Object -TypeName $jobType.FullName
    try {
        try {
            $process = [System.Diagnostics.Process]::Start($info)
        }
        catch {
            $reason = Get-LabInnerException -Exception $_.Exception
            throw ("cannot start {0}: {1}" -f $argv[0], $reason.Message)
        }
        [void]$Context['children'].Add($process.Id)
        try {
            $job.Add($process.Handle)
        }
        catch {
            $null = $_  # it exited already: the loop below sees an empty job
        }
        Write-LabStdin -Process $process -Text '' -Encoding (New-Object System.Text.UTF8Encoding($false))
        $stdoutTask = $process.StandardOutput.ReadToEndAsync()  # drained, so a chatty program never blocks
        $stderrTask = $process.StandardError.ReadToEndAsync()
        $evidence['pid'] = $process.Id
        $session = $null
        try {
            $session = $process.SessionId
        }
        catch {
            $session = $null
        }
        $evidence['session_id'] = $session
        if ($session -eq 0) {
            $evidence['desktop'] = 'none: session 0 (WinRS) has no interactive desktop; the UI was not exercised'
        }
        $watch = [System.Diagnostics.Stopwatch]::StartNew()
        $peak = [long]0
        $most = 0
        $active = 0
        $overBudget = $false
        while ($true) {
            $active = $job.ActiveProcesses
            $most = [Math]::Max($most, $active)
            if ($active -eq 0) {
                break
            }
            $peak = [Math]::Max($peak, (Get-LabTreeWorkingSet -Job $job))
            if ($null -ne $budget -and $peak -gt ([double]$budget * 1048576)) {
                $overBudget = $true
                break
            }
            if ($watch.Elapsed.TotalSeconds -ge $alive) {
                break
            }
            Start-Sleep -Milliseconds 200
        }
        $peakMb = [Math]::Round($peak / 1048576.0, 1)
        $evidence['peak_working_set_mb'] = $peakMb
        $evidence['peak_job_memory_mb'] = [Math]::Round($job.PeakJobMemory / 1048576.0, 1)
        $evidence['most_processes'] = $most
        $label = [System.IO.Path]::GetFileName($argv[0])
        if ($active -eq 0) {
            $evidence['died_after_s'] = [Math]::Round($watch.Elapsed.TotalSeconds, 1)
            $exitCode = $null
            if ($process.HasExited) {
                $exitCode = $process.ExitCode
            }
            $evidence['exit_code'] = $exitCode
            foreach ($pair in @(@('stdout', $stdoutTask), @('stderr', $stderrTask))) {
                if ($pair[1].Wait(1000)) {
                    $evidence[$pair[0]] = Limit-LabText ([string]$pair[1].Result)
                }
            }
            return New-LabOutcome 'fail' ('{0} and every process it started exited after {1}s (exit code {2}); it must stay alive {3}s' -f $label, (ConvertTo-LabNumberText $watch.Elapsed.TotalSeconds), $exitCode, (ConvertTo-LabNumberText $alive)) $evidence
        }
        if ($overBudget) {
            return New-LabOutcome 'fail' ('{0} reached a working set of {1} MB (its whole process tree), over the budget of {2} MB' -f $label, (ConvertTo-LabNumberText $peakMb), $budget) $evidence
        }
        $where = ''
        if ($session -eq 0) {
            $where = ' (session 0, no desktop)'
        }
        return New-LabOutcome 'pass' ('{0} stayed alive {1}s{2}, peak working set {3} MB over {4} process(es)' -f $label, (ConvertTo-LabNumberText $alive), $where, (ConvertTo-LabNumberText $peakMb), $most) $evidence
    }
    finally {
        $job.Kill()  # the whole tree, grandchildren included
        $job.Dispose()
        $evidence['stopped'] = $true
    }
}


# --- eventlog -----------------------------------------------------------------------------------

function ConvertTo-LabXPathLiteral {
    param([string] $Text)
    if (-not $Text.Contains("'")) {
        return "'" + $Text + "'"
    }
    if (-not $Text.Contains('"')) {
        return '"' + $Text + '"'
    }
    throw ("'{0}' has both kinds of quote and cannot be used in an event query" -f $Text)
}

function ConvertFrom-LabTimestamp {
    param([string] $Text)
    $styles = [System.Globalization.DateTimeStyles]::AssumeUniversal
    $parsed = [DateTimeOffset]::MinValue
    if (-not [DateTimeOffset]::TryParse($Text, [System.Globalization.CultureInfo]::InvariantCulture, $styles, [ref]$parsed)) {
        throw ("since must be an ISO 8601 timestamp such as 2024-05-01T06:00:00Z, got '{0}'" -f $Text)
    }
    return $parsed.UtcDateTime
}

function Get-LabDeployTime {
    # "since: deploy": the newest deployed_at of the deploy records (%ProgramData%\lab\installed\*.json),
    # stamped by the host's own clock when deploy.yml ran, so it compares with the host's event times.
    param($Context)
    $folder = Resolve-LabPath -Context $Context -Path ([System.IO.Path]::Combine($env:ProgramData, 'lab\installed'))
    $newest = $null
    if ([System.IO.Directory]::Exists($folder)) {
        foreach ($file in [System.IO.Directory]::GetFiles($folder, '*.json')) {
            try {
                $document = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($file))
                $field = $document.PSObject.Properties['deployed_at']
                if ($null -ne $field -and [string]$field.Value -ne '') {
                    $stamp = ConvertFrom-LabTimestamp -Text ([string]$field.Value)
                    if ($null -eq $newest -or $stamp -gt $newest) {
                        $newest = $stamp
                    }
                }
            }
            catch {
                $null = $_  # a record without a usable deployed_at does not count
            }
        }
    }
    if ($null -eq $newest) {
        throw ('since: deploy needs a deploy record with deployed_at in {0}; deploy.yml writes it (deploy once more with the current playbook)' -f $folder)
    }
    return $newest.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function Test-LabEventLog {
    param($Params, $Context)
    $log = [string](Get-LabParam $Params 'log' 'Application')
    $source = Get-LabParam $Params 'source'
    $levelParam = Get-LabParam $Params 'level' @('critical', 'error')
    $levelNames = @($levelParam)
    $since = [string](Get-LabParam $Params 'since')
    $sinceWhat = $since
    if ($since -eq 'deploy') {
        $since = Get-LabDeployTime -Context $Context
        $sinceWhat = 'the deploy ({0})' -f $since
    }
    $eventIds = Get-LabParam $Params 'event_id'
    $allowed = [int](Get-LabParam $Params 'max' 0)
    $sinceUtc = ConvertFrom-LabTimestamp -Text $since
    $levelNumbers = @{ critical = @(1); error = @(2); warning = @(3); information = @(0, 4); verbose = @(5) }
    $conditions = New-Object System.Collections.ArrayList
    if ($null -ne $source) {
        [void]$conditions.Add('Provider[@Name=' + (ConvertTo-LabXPathLiteral -Text ([string]$source)) + ']')
    }
    $levelTerms = New-Object System.Collections.ArrayList
    foreach ($levelName in $levelNames) {
        if (-not $levelNumbers.Contains([string]$levelName)) {
            throw ("unknown event level '{0}'; use critical, error, warning, information or verbose" -f $levelName)
        }
        foreach ($number in $levelNumbers[[string]$levelName]) {
            [void]$levelTerms.Add('Level=' + [int]$number)
        }
    }
    [void]$conditions.Add('(' + ($levelTerms.ToArray() -join ' or ') + ')')
    if ($null -ne $eventIds) {
        $idTerms = @(@($eventIds) | ForEach-Object { 'EventID=' + [int]$_ })
        [void]$conditions.Add('(' + ($idTerms -join ' or ') + ')')
    }
    $stamp = $sinceUtc.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
    [void]$conditions.Add("TimeCreated[@SystemTime>='" + $stamp + "']")
    $xpath = '*[System[' + ($conditions.ToArray() -join ' and ') + ']]'
    $evidence = [ordered]@{ log = $log; source = $source; level = $levelNames; since = $since; query = $xpath }
    # A reverted checkpoint starts the guest clock in the past until time sync catches up: say how far the
    # host clock was from UTC as the host last synchronised it, so a skewed "since" can be seen.
    $evidence['host_time_utc'] = [DateTime]::UtcNow.ToString('o')
    $query = New-Object System.Diagnostics.Eventing.Reader.EventLogQuery -ArgumentList $log, ([System.Diagnostics.Eventing.Reader.PathType]::LogName), $xpath
    $reader = New-Object System.Diagnostics.Eventing.Reader.EventLogReader -ArgumentList $query
    $count = 0
    $samples = New-Object System.Collections.ArrayList
    try {
        $record = $reader.ReadEvent()
        while ($null -ne $record) {
            $count++
            if ($samples.Count -lt 10) {
                $description = $null
                try {
                    $description = $record.FormatDescription()
                }
                catch {
                    $description = $null
                }
                $created = $null
                if ($null -ne $record.TimeCreated) {
                    $created = ([datetime]$record.TimeCreated).ToUniversalTime().ToString('o')
                }
                $level = $null
                if ($null -ne $record.Level) {
                    $level = [int]$record.Level
                }
                [void]$samples.Add([ordered]@{
                    time     = $created
                    id       = $record.Id
                    provider = $record.ProviderName
                    level    = $level
                    message  = [string](Limit-LabText $description)
                })
            }
            $record.Dispose()
            if ($count -ge 10000) {
                $evidence['count_capped'] = $true
                break
            }
            $record = $reader.ReadEvent()
        }
    }
    finally {
        $reader.Dispose()
    }
    $evidence['count'] = $count
    $evidence['events'] = $samples.ToArray()
    $what = $log
    if ($null -ne $source) {
        $what = '{0} ({1})' -f $log, $source
    }
    if ($count -gt $allowed) {
        return New-LabOutcome 'fail' ('{0} new {1} events in {2} since {3}, at most {4} allowed' -f $count, ($levelNames -join '/'), $what, $sinceWhat, $allowed) $evidence
    }
    return New-LabOutcome 'pass' ('{0} new {1} events in {2} since {3}' -f $count, ($levelNames -join '/'), $what, $sinceWhat) $evidence
}


# --- pester -------------------------------------------------------------------------------------

function Get-LabProperty {
    param($InputObject, [string] $Name)
    if ($null -eq $InputObject) {
        return $null
    }
    $property = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $property) {
        return $null
    }
    return , ($property.Value)
}

function ConvertTo-LabPesterStatus {
    param([string] $Result)
    if ($Result -eq 'Passed') { return 'pass' }
    if ($Result -eq 'Failed') { return 'fail' }
    if ($Result -eq 'Skipped' -or $Result -eq 'Pending' -or $Result -eq 'Inconclusive' -or $Result -eq 'NotRun') { return 'skip' }
    return 'error'
}

function ConvertFrom-LabPesterRun {
    # The tests of an Invoke-Pester -PassThru result, Pester 5 (Tests) or Pester 3/4 (TestResult).
    param($Run)
    $tests = New-Object System.Collections.ArrayList
    $problems = New-Object System.Collections.ArrayList
    $pester5 = Get-LabProperty $Run 'Tests'
    if ($null -ne (Get-LabProperty $Run 'Containers')) {
        foreach ($test in @($pester5)) {
            $name = [string](Get-LabProperty $test 'ExpandedName')
            if ($name.Length -eq 0) {
                $name = [string](Get-LabProperty $test 'Name')
            }
            # the Describe/Context path of the test: its block's path (a test's own path ends in its name)
            $parent = Get-LabProperty $test 'Block'
            $path = Get-LabProperty $parent 'ExpandedPath'
            if ($null -eq $path) {
                $pathParts = Get-LabProperty $test 'Path'
                $path = @($pathParts | Select-Object -SkipLast 1) -join '.'
            }
            $errorRecords = Get-LabProperty $test 'ErrorRecord'
            $messages = @(@($errorRecords) | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
            $duration = Get-LabProperty $test 'Duration'
            [void]$tests.Add([ordered]@{
                name        = $name
                block       = [string]$path
                result      = [string](Get-LabProperty $test 'Result')
                message     = ($messages -join "`n")
                duration_ms = $(if ($null -ne $duration) { [long]$duration.TotalMilliseconds } else { [long]0 })
            })
        }
        $containers = Get-LabProperty $Run 'Containers'
        foreach ($container in @($containers)) {
            if ([string](Get-LabProperty $container 'Result') -eq 'Failed') {
                $records = Get-LabProperty $container 'ErrorRecord'
                foreach ($record in @($records)) {
                    if ($null -ne $record) {
                        [void]$problems.Add([string]$record)
                    }
                }
            }
        }
        $failedBlocks = Get-LabProperty $Run 'FailedBlocksCount'
        if ($null -ne $failedBlocks -and [int]$failedBlocks -gt 0) {
            [void]$problems.Add(('{0} Pester blocks failed in BeforeAll/AfterAll' -f $failedBlocks))
        }
    }
    else {
        $testResults = Get-LabProperty $Run 'TestResult'
        foreach ($test in @($testResults)) {
            $blocks = @((Get-LabProperty $test 'Describe'), (Get-LabProperty $test 'Context') | Where-Object { $null -ne $_ -and [string]$_ -ne '' })
            $time = Get-LabProperty $test 'Time'
            [void]$tests.Add([ordered]@{
                name        = [string](Get-LabProperty $test 'Name')
                block       = ($blocks -join '.')
                result      = [string](Get-LabProperty $test 'Result')
                message     = [string](Get-LabProperty $test 'FailureMessage')
                duration_ms = $(if ($null -ne $time) { [long]$time.TotalMilliseconds } else { [long]0 })
            })
        }
    }
    return @{ tests = $tests.ToArray(); problems = $problems.ToArray() }
}

function Get-LabScriptPolicyProblem {
    # Why Windows will not run the Pester files under Path, or null. -ExecutionPolicy Bypass (and the worker
    # runspace's Bypass) lose to an execution policy set by Group Policy: AllSigned runs signed files only,
    # Restricted none at all.
    param([string] $Path, [string] $Shown)
    $effective = [string](Get-ExecutionPolicy)
    if (@('AllSigned', 'Restricted') -notcontains $effective) {
        return $null
    }
    $scope = 'Group Policy'
    foreach ($candidate in @('MachinePolicy', 'UserPolicy')) {
        if ([string](Get-ExecutionPolicy -Scope $candidate) -eq $effective) {
            $scope = 'Group Policy ({0})' -f $candidate
            break
        }
    }
    $allow = 'The admin must allow it: set the policy to RemoteSigned (or Bypass) for the sandboxes, or sign the test files (and Pester) with a code-signing certificate the host trusts (Trusted Publishers).'
    if ($effective -eq 'Restricted') {
        return ('execution policy Restricted is set by {0} on this host and overrides -ExecutionPolicy Bypass: no script file runs, so {1} cannot. {2}' -f $scope, $Shown, $allow)
    }
    $files = @($Path)
    if ([System.IO.Directory]::Exists($Path)) {
        $files = @([System.IO.Directory]::GetFiles($Path, '*.ps1', [System.IO.SearchOption]::AllDirectories))
    }
    $unsigned = @($files | Where-Object { [string](Get-AuthenticodeSignature -FilePath $_).Status -ne 'Valid' })
    if ($unsigned.Count -eq 0) {
        return $null
    }
    return ('execution policy AllSigned is set by {0} on this host and overrides -ExecutionPolicy Bypass: {1} of the Pester files of {2} carry no valid signature (first: {3}), so Windows will not run them. {4}' -f $scope, $unsigned.Count, $Shown, $unsigned[0], $allow)
}

function Test-LabPester {
    param($Params, $Context)
    Set-StrictMode -Off  # test files are the sandbox owner's code, not ours
    $shown = [string](Get-LabParam $Params 'path')
    $path = Resolve-LabPath -Context $Context -Path $shown
    $tags = Get-LabParam $Params 'tag'
    $excluded = Get-LabParam $Params 'exclude_tag'
    if (-not ([System.IO.File]::Exists($path) -or [System.IO.Directory]::Exists($path))) {
        return New-LabOutcome 'fail' ('{0} does not exist' -f $shown) ([ordered]@{ path = $shown })
    }
    $blocked = Get-LabScriptPolicyProblem -Path $path -Shown $shown
    if ($null -ne $blocked) {
        return New-LabOutcome 'error' $blocked ([ordered]@{ path = $shown; execution_policy = [string](Get-ExecutionPolicy) })
    }
    $module = @(Get-Module -ListAvailable -Name 'Pester' | Sort-Object -Property 'Version' -Descending) | Select-Object -First 1
    if ($null -eq $module) {
        throw 'Pester is not installed on this sandbox'
    }
    Import-Module -Name $module.Path -Force -ErrorAction Stop
    $major = $module.Version.Major
    $arguments = @{ PassThru = $true }
    if ($major -ge 5) {
        $arguments['Path'] = $path
        $arguments['Output'] = 'None'
    }
    elseif ($major -eq 4) {
        $arguments['Script'] = $path
        $arguments['Show'] = 'None'
    }
    else {
        $arguments['Script'] = $path
        $arguments['Quiet'] = $true
    }
    if ($null -ne $tags) {
        $arguments['Tag'] = [string[]]@($tags)
    }
    if ($null -ne $excluded) {
        $arguments['ExcludeTag'] = [string[]]@($excluded)
    }
    $output = @(Invoke-Pester @arguments)
    $run = $null
    foreach ($item in $output) {
        if ($null -ne $item -and ($null -ne (Get-LabProperty $item 'TestResult') -or $null -ne (Get-LabProperty $item 'Containers'))) {
            $run = $item
        }
    }
    if ($null -eq $run) {
        throw ('Invoke-Pester (Pester {0}) returned no result object' -f $module.Version)
    }
    $parsed = ConvertFrom-LabPesterRun -Run $run
    $tests = @($parsed['tests'])
    $seen = @{}
    foreach ($test in $tests) {
        $key = $test['name']
        if ($seen.Contains($key)) {
            $seen[$key] = $seen[$key] + 1
        }
        else {
            $seen[$key] = 1
        }
    }
    $extra = New-Object System.Collections.ArrayList
    $used = @{}
    $failed = New-Object System.Collections.ArrayList
    $counts = @{ pass = 0; fail = 0; skip = 0; error = 0 }
    foreach ($test in $tests) {
        $name = $test['name']
        if ($seen[$name] -gt 1 -and $test['block'] -ne '') {
            $name = $test['block'] + '/' + $name
        }
        $base = $name
        $n = 2
        while ($used.Contains($name)) {
            $name = '{0} #{1}' -f $base, $n
            $n++
        }
        $used[$name] = $true
        $status = ConvertTo-LabPesterStatus -Result $test['result']
        $counts[$status] = $counts[$status] + 1
        if ($status -eq 'fail') {
            [void]$failed.Add($name)
        }
        $message = $test['message']
        if ($message.Length -eq 0) {
            $message = 'Pester: {0}' -f $test['result']
        }
        [void]$extra.Add([ordered]@{
            name        = $name
            status      = $status
            message     = $message
            evidence    = [ordered]@{ block = $test['block']; result = $test['result']; pester_version = [string]$module.Version }
            duration_ms = $test['duration_ms']
        })
    }
    $evidence = [ordered]@{
        path           = $shown
        pester_version = [string]$module.Version
        total          = $tests.Count
        passed         = $counts['pass']
        failed         = $counts['fail']
        skipped        = $counts['skip']
        failed_tests   = $failed.ToArray()
        problems       = @($parsed['problems'])
    }
    if (@($parsed['problems']).Count -gt 0) {
        return New-LabOutcome 'error' ('Pester could not run all of {0}: {1}' -f $shown, @($parsed['problems'])[0]) $evidence $extra.ToArray()
    }
    if ($tests.Count -eq 0) {
        return New-LabOutcome 'error' ('no Pester tests found in {0}' -f $shown) $evidence $extra.ToArray()
    }
    if ($counts['fail'] -gt 0 -or $counts['error'] -gt 0) {
        return New-LabOutcome 'fail' ('{0} of {1} Pester tests failed: {2}' -f ($counts['fail'] + $counts['error']), $tests.Count, ($failed.ToArray() -join ', ')) $evidence $extra.ToArray()
    }
    return New-LabOutcome 'pass' ('{0} Pester tests passed, {1} skipped' -f $counts['pass'], $counts['skip']) $evidence $extra.ToArray()
}


# --- engine -------------------------------------------------------------------------------------

function ConvertTo-LabPlain {
    # ConvertFrom-Json output as ordered dictionaries and object[] (PowerShell 5.1 has no -AsHashtable).
    param($InputObject)
    if ($null -eq $InputObject) {
        return $null
    }
    if ($InputObject -is [System.Management.Automation.PSCustomObject]) {
        $table = [ordered]@{}
        foreach ($property in $InputObject.PSObject.Properties) {
            $table[$property.Name] = ConvertTo-LabPlain -InputObject $property.Value
        }
        return $table
    }
    if ($InputObject -is [string]) {
        return $InputObject
    }
    if ($InputObject -is [System.Collections.IEnumerable] -and -not ($InputObject -is [System.Collections.IDictionary])) {
        $items = New-Object System.Collections.ArrayList
        foreach ($item in $InputObject) {
            [void]$items.Add((ConvertTo-LabPlain -InputObject $item))
        }
        return , ($items.ToArray())
    }
    return $InputObject
}

function ConvertTo-LabJsonValue {
    # Plain values for ConvertTo-Json: dictionaries, object[], strings, numbers, booleans, null.
    param($InputObject, [int] $Depth = 0)
    if ($null -eq $InputObject) {
        return $null
    }
    if ($InputObject -is [System.Management.Automation.PSCustomObject]) {
        $table = [ordered]@{}
        foreach ($property in $InputObject.PSObject.Properties) {
            $table[$property.Name] = ConvertTo-LabJsonValue -InputObject $property.Value -Depth ($Depth + 1)
        }
        return $table
    }
    $value = $InputObject.PSObject.BaseObject
    if ($Depth -gt 20) {
        return [string]$value
    }
    if ($value -is [string] -or $value -is [bool]) {
        return $value
    }
    if ($value -is [char] -or $value -is [enum] -or $value -is [System.Guid]) {
        return $value.ToString()
    }
    if ($value -is [double] -or $value -is [System.Single]) {
        if ([double]::IsNaN($value) -or [double]::IsInfinity($value)) {
            return $value.ToString([System.Globalization.CultureInfo]::InvariantCulture)
        }
        return [double]$value
    }
    if ($value -is [int] -or $value -is [long] -or $value -is [decimal] -or $value -is [byte] -or $value -is [System.Int16] -or
        $value -is [System.UInt16] -or $value -is [System.UInt32] -or $value -is [System.UInt64] -or $value -is [System.SByte]) {
        return $value
    }
    if ($value -is [datetime]) {
        return $value.ToUniversalTime().ToString('o')
    }
    if ($value -is [System.DateTimeOffset]) {
        return $value.ToString('o')
    }
    if ($value -is [System.TimeSpan]) {
        return $value.TotalMilliseconds
    }
    if ($value -is [System.Collections.IDictionary]) {
        $table = [ordered]@{}
        foreach ($key in @($value.Keys)) {
            $table[[string]$key] = ConvertTo-LabJsonValue -InputObject $value[$key] -Depth ($Depth + 1)
        }
        return $table
    }
    if ($value -is [System.Collections.IEnumerable]) {
        $items = New-Object System.Collections.ArrayList
        foreach ($item in $value) {
            [void]$items.Add((ConvertTo-LabJsonValue -InputObject $item -Depth ($Depth + 1)))
        }
        return , ($items.ToArray())
    }
    return $value.ToString()
}

function ConvertTo-LabJsonLine {
    # One compact JSON line, ASCII only: other characters become \uXXXX escapes. Throws what ConvertTo-Json throws.
    param($Value)
    $json = ConvertTo-Json -InputObject (ConvertTo-LabJsonValue -InputObject $Value) -Depth 32 -Compress
    $escape = [System.Text.RegularExpressions.MatchEvaluator] {
        param($m)
        '\u{0:x4}' -f [int][char]$m.Value
    }
    return ([regex]::Replace($json, '[^\x00-\x7F]', $escape) + "`n")
}

function Write-LabText {
    param([System.IO.TextWriter] $Writer, [string] $Text)
    $Writer.Write($Text)
    $Writer.Flush()
}

function New-LabErrorLine {
    param($CheckId, [string] $Message, [int] $Attempts = 0)
    $id = $null
    if ($null -ne $CheckId) {
        $id = [string]$CheckId
    }
    return [ordered]@{ id = $id; status = 'error'; message = $Message; evidence = [ordered]@{}; duration_ms = 0; attempts = $Attempts }
}

function Get-LabCheckText {
    # Every result line of one manifest entry, serialized: the check's own work and its serialization both
    # happen here, so a check that throws or an evidence value ConvertTo-Json rejects errs that check alone.
    param($Check, [string] $Root)
    if (-not ($Check -is [System.Collections.IDictionary])) {
        $lines = @(New-LabErrorLine -CheckId $null -Message 'a check entry is not a JSON object')
    }
    elseif ([string](Get-LabParam $Check 'broken' '') -ne '') {
        $lines = @(New-LabErrorLine -CheckId $Check['id'] -Message ([string]$Check['broken']))
    }
    elseif ([string](Get-LabParam $Check 'skip' '') -ne '') {
        $lines = @([ordered]@{ id = [string]$Check['id']; status = 'skip'; message = [string]$Check['skip']; evidence = [ordered]@{}; duration_ms = 0; attempts = 0 })
    }
    else {
        $lines = Invoke-LabCheck -Check $Check -Root $Root
    }
    $text = New-Object System.Text.StringBuilder
    foreach ($line in $lines) {
        [void]$text.Append((ConvertTo-LabJsonLine -Value $line))
    }
    return $text.ToString()
}

function Invoke-LabHandler {
    # Runs in the worker runspace: one attempt of one check; never throws.
    param([string] $Handler, $Params, $Context)
    Set-StrictMode -Version 2.0
    $ErrorActionPreference = 'Stop'
    $ProgressPreference = 'SilentlyContinue'
    try {
        $output = @(& $Handler -Params $Params -Context $Context)
        for ($i = $output.Count - 1; $i -ge 0; $i--) {
            $item = $output[$i]
            if ($item -is [System.Collections.IDictionary] -and $item.Contains('status')) {
                return $item
            }
        }
        return New-LabOutcome 'error' ('{0} returned no result' -f $Handler)
    }
    catch {
        return New-LabOutcome 'error' (Format-LabError $_)
    }
}

function Get-LabWorkerRunspace {
    if ($null -ne $LabRunnerState['Runspace']) {
        return $LabRunnerState['Runspace']
    }
    $state = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault()
    try {
        $state.ExecutionPolicy = [Microsoft.PowerShell.ExecutionPolicy]::Bypass
    }
    catch {
        $null = $_
    }
    foreach ($function in @(Get-ChildItem -Path 'function:' | Where-Object { $_.Name -like '*-Lab*' })) {
        $entry = New-Object System.Management.Automation.Runspaces.SessionStateFunctionEntry -ArgumentList $function.Name, $function.Definition
        $state.Commands.Add($entry)
    }
    $runspace = [System.Management.Automation.Runspaces.RunspaceFactory]::CreateRunspace($state)
    $runspace.Open()
    $LabRunnerState['Runspace'] = $runspace
    return $runspace
}

function Invoke-LabAttempt {
    # One attempt of a check in the worker runspace, stopped after its timeout (plus one second).
    param([System.Collections.IDictionary] $Check, [string] $Root, [double] $Timeout)
    $type = [string](Get-LabParam $Check 'type' '')
    if (@($LabCheckHandlers.Keys) -cnotcontains $type) {
        return New-LabOutcome 'error' ("unknown check type '{0}'" -f $type)
    }
    $params = Get-LabParam $Check 'params'
    if ($null -eq $params) {
        $params = [ordered]@{}
    }
    if (-not ($params -is [System.Collections.IDictionary])) {
        return New-LabOutcome 'error' 'params must be a JSON object'
    }
    $children = [System.Collections.ArrayList]::Synchronized((New-Object System.Collections.ArrayList))
    $context = [hashtable]::Synchronized(@{ root = $Root; timeout = $Timeout; children = $children })
    $shell = [System.Management.Automation.PowerShell]::Create()
    try {
        $shell.Runspace = Get-LabWorkerRunspace
        [void]$shell.AddCommand('Invoke-LabHandler').AddParameter('Handler', $LabCheckHandlers[$type]).AddParameter('Params', $params).AddParameter('Context', $context)
        $async = $shell.BeginInvoke()
        $waitMs = [int][Math]::Ceiling(($Timeout + 1.0) * 1000.0)
        if (-not $async.AsyncWaitHandle.WaitOne($waitMs)) {
            foreach ($child in @($children.ToArray())) {
                Stop-LabProcessTree -ProcessId ([int]$child)
            }
            [void]$shell.BeginStop($null, $null)
            $shell = $null  # still stopping: neither wait for it nor dispose it
            $LabRunnerState['Runspace'] = $null
            $LabRunnerState['Abandoned'] = [int]$LabRunnerState['Abandoned'] + 1
            return New-LabOutcome 'error' ('timed out after {0}s' -f (ConvertTo-LabNumberText $Timeout))
        }
        $output = @($shell.EndInvoke($async))
    }
    catch {
        return New-LabOutcome 'error' (Format-LabError $_)
    }
    finally {
        if ($null -ne $shell) {
            $shell.Dispose()
        }
    }
    if ($output.Count -eq 0) {
        return New-LabOutcome 'error' 'the check returned nothing'
    }
    $outcome = $output[$output.Count - 1].PSObject.BaseObject
    if (-not ($outcome -is [System.Collections.IDictionary])) {
        return New-LabOutcome 'error' 'the check returned no outcome'
    }
    return $outcome
}

function Invoke-LabCheck {
    # A check with its retries: result lines (Pester tests first, then the check's own line).
    param([System.Collections.IDictionary] $Check, [string] $Root)
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    $retries = [int](Get-LabParam $Check 'retries' 0)
    $timeout = [double](Get-LabParam $Check 'timeout' 30)
    $history = New-Object System.Collections.ArrayList
    while ($true) {
        $outcome = Invoke-LabAttempt -Check $Check -Root $Root -Timeout $timeout
        [void]$history.Add([ordered]@{ status = [string]$outcome['status']; message = [string]$outcome['message'] })
        if ($outcome['status'] -eq 'pass' -or $history.Count -gt $retries) {
            break
        }
    }
    $status = [string]$outcome['status']
    $evidence = $outcome['evidence']
    if (-not ($evidence -is [System.Collections.IDictionary])) {
        $evidence = [ordered]@{}
    }
    if ($status -eq 'pass' -and $history.Count -gt 1) {
        $status = 'flaky'
        $copy = [ordered]@{}
        foreach ($key in @($evidence.Keys)) {
            $copy[$key] = $evidence[$key]
        }
        $copy['earlier_attempts'] = $history.GetRange(0, $history.Count - 1).ToArray()
        $evidence = $copy
    }
    $checkId = [string](Get-LabParam $Check 'id')
    $lines = New-Object System.Collections.ArrayList
    if ($null -ne $outcome['extra']) {
        foreach ($item in @($outcome['extra'])) {
            [void]$lines.Add([ordered]@{
                id          = $checkId + '/' + $item['name']
                status      = $item['status']
                message     = $item['message']
                evidence    = $item['evidence']
                duration_ms = $item['duration_ms']
                attempts    = $history.Count
            })
        }
    }
    [void]$lines.Add([ordered]@{
        id          = $checkId
        status      = $status
        message     = [string]$outcome['message']
        evidence    = $evidence
        duration_ms = [long]$watch.Elapsed.TotalMilliseconds
        attempts    = $history.Count
    })
    return , ($lines.ToArray())
}

function Initialize-LabConsole {
    # UTF-8 without BOM both ways: a UTF8Encoding with BOM (what .NET Framework gives at code page 65001)
    # writes a BOM into every child's stdin, and an OEM code page loses non-ASCII characters.
    try {
        [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding($false)
    }
    catch {
        $null = $_  # no console (PSRP): the output is ASCII anyway
    }
    try {
        [Console]::InputEncoding = New-Object System.Text.UTF8Encoding($false)
    }
    catch {
        $null = $_  # no console: children get their stdin as bytes anyway (Write-LabStdin)
    }
}

function Import-LabType {
    # The C# type Name compiled from Source, once per process (types outlive runspaces). Add-Type needs
    # FullLanguage: ConstrainedLanguage (WDAC/AppLocker) forbids it.
    param([string] $Name, [string] $Source)
    Assert-LabFullLanguage
    $existing = $Name -as [type]
    if ($null -ne $existing) {
        return $existing
    }
    Add-Type -TypeDefinition $Source -Language CSharp
    return ($Name -as [type])
}

function Test-LabFullLanguage {
    return ([string]$ExecutionContext.SessionState.LanguageMode -eq 'FullLanguage')
}

function Assert-LabFullLanguage {
    # Guards every use of Add-Type: ConstrainedLanguage (WDAC/AppLocker) forbids it.
    if (-not (Test-LabFullLanguage)) {
        throw ('PowerShell runs in {0} mode on this host (WDAC or AppLocker enforcement); this check needs FullLanguage' -f $ExecutionContext.SessionState.LanguageMode)
    }
}

function Invoke-LabManifest {
    <#
    Run every check of a manifest (JSON text), writing one JSON line per result to -Writer (the
    console by default) and a last line {"end": true, "checks": n}. Returns the exit code: 0 when
    the manifest ran, 1 when it could not be read (the reason goes to stderr).
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)] [AllowEmptyString()] [string] $Json,
        [System.IO.TextWriter] $Writer = $null
    )
    if (-not (Test-LabFullLanguage)) {
        Write-Error -Message ('lab runner: PowerShell runs in {0} mode; the runner needs FullLanguage' -f $ExecutionContext.SessionState.LanguageMode) -ErrorAction Continue
        return 1
    }
    if ($PSVersionTable.PSVersion.Major -lt 5 -or ($PSVersionTable.PSVersion.Major -eq 5 -and $PSVersionTable.PSVersion.Minor -lt 1)) {
        [Console]::Error.WriteLine(('lab runner: PowerShell 5.1 or later is needed, this is {0}' -f $PSVersionTable.PSVersion))
        return 1
    }
    Initialize-LabConsole
    if ($null -eq $Writer) {
        $Writer = [Console]::Out
    }
    try {
        $manifest = ConvertTo-LabPlain -InputObject (ConvertFrom-Json -InputObject $Json)
    }
    catch {
        [Console]::Error.WriteLine(('lab runner: the manifest is not valid JSON: {0}' -f $_.Exception.Message))
        return 1
    }
    if (-not ($manifest -is [System.Collections.IDictionary]) -or -not $manifest.Contains('format') -or $manifest['format'] -ne $LabFormat) {
        $format = $null
        if ($manifest -is [System.Collections.IDictionary] -and $manifest.Contains('format')) {
            $format = $manifest['format']
        }
        [Console]::Error.WriteLine(('lab runner: manifest format {0} not supported' -f $format))
        return 1
    }
    $root = [string](Get-LabParam $manifest 'root' '/')
    $checkList = Get-LabParam $manifest 'checks' @()
    $checks = @($checkList)
    try {
        foreach ($check in $checks) {
            try {
                $text = Get-LabCheckText -Check $check -Root $root
            }
            catch {
                $checkId = $null
                if ($check -is [System.Collections.IDictionary]) {
                    $checkId = $check['id']
                }
                $text = ConvertTo-LabJsonLine -Value (New-LabErrorLine -CheckId $checkId -Message (Format-LabError $_) -Attempts 1)
            }
            Write-LabText -Writer $Writer -Text $text
        }
        Write-LabText -Writer $Writer -Text (ConvertTo-LabJsonLine -Value ([ordered]@{ end = $true; checks = $checks.Count }))
    }
    finally {
        $runspace = $LabRunnerState['Runspace']
        if ($null -ne $runspace) {
            $LabRunnerState['Runspace'] = $null
            $runspace.Dispose()
        }
    }
    return 0
}

function Stop-LabRunner {
    # End the process with ExitCode; a check that had to be abandoned may still hold a thread.
    param([int] $ExitCode)
    [Console]::Out.Flush()
    if ([int]$LabRunnerState['Abandoned'] -gt 0) {
        [Environment]::Exit($ExitCode)
    }
    exit $ExitCode
}
