// One tool <-> recorder session, driven by the emulator's thread.
//
// The host (EmuHawk's form, or the headless test client) calls OnPreFrame and
// OnPostFrame around every emulated frame and Poll from a timer between frames.
// All session state lives on that thread; the transport's threads only queue
// events. Nothing here blocks for long:
//  - human mode never waits for anything; STEPs go into a bounded queue, and
//    when it is full the STEP is skipped, its seq consumed, and FRAMES_DROPPED
//    tells the recorder (docs/protocol.md, FRAMES_DROPPED) - never silently;
//  - policy mode is lockstep (docs/protocol.md, "Policy mode"): after a STEP the
//    next frame must not run before ACTION for the next seq. The session waits
//    at most LockstepSpinMs on the spot (a localhost round trip is ~1-2 ms),
//    then pauses the emulator and returns, so the window stays responsive
//    (BizHawk issue 2671 is the freeze this avoids); Poll unpauses it when the
//    ACTION arrives, or gives up after WELCOME's step timeout with 4007.
using System;
using System.Diagnostics;

namespace SonicRL.Tool
{
    public sealed class SessionOptions
    {
        public string Url = "ws://127.0.0.1:8765";
        public string Token = "";
        public Mode Mode = Mode.Any;
        /// <summary>Game profile id wanted, or "" to let the recorder choose.</summary>
        public string Game = "";
        public string ClientName = "sonic-rl BizHawk tool";
        public string ClientVersion = "0.1.0";
        /// <summary>STEP messages that may wait to be sent (about 0.35 MB each for the Genesis).</summary>
        public int QueueCapacity = 64;
        public int ConnectTimeoutMs = 5000;
        public int HandshakeTimeoutMs = 10000;
        /// <summary>How long a frame callback may wait for ACTION before pausing the emulator instead.</summary>
        public int LockstepSpinMs = 20;
        /// <summary>Reconnect after a lost connection, with doubling delays.</summary>
        public bool Reconnect = true;
        public int ReconnectInitialMs = 500;
        public int ReconnectMaxMs = 8000;
        /// <summary>Refuse to send a message over 16 MiB (the recorder would close with 1009).</summary>
        public bool CheckSizeBeforeSending = true;
    }

    public sealed class RecorderSession
    {
        enum Await
        {
            Nothing,
            Reset,
            Action,
        }

        readonly IEmulatorHost _host;
        readonly SessionOptions _opt;
        readonly Stopwatch _clock = Stopwatch.StartNew();
        readonly FrameRateMeter _fps = new FrameRateMeter();
        WebSocketTransport _transport;
        SessionState _state = SessionState.Idle;
        EmulatorInfo _info;
        Welcome _welcome;
        string _connection = "not connected";
        string _error = "";
        string _warning = "";
        string _lastEpisode = "";
        bool _fatal;
        bool _userClosed;
        bool _stopReceived;
        int _reconnectDelayMs;
        long _reconnectAtMs;
        int _attempt;
        long _handshakeStartMs;

        // Per connection.
        uint _seq = 1;
        uint _episode;
        uint _episodeFirstSeq = 1;
        uint[] _masks = new uint[1];
        int _framesInStep;
        long _lastFrame = -1;
        Await _await = Await.Nothing;
        long _awaitStartMs;
        ActionMsg _action;
        ActionMsg _nextAction;
        /// <summary>The recorder's latest STATUS (last reward, return so far), or null.</summary>
        StatusMsg _lastStatus;
        bool _pausedByUs;
        // Steps skipped because the send queue was full, not yet reported.
        uint _dropFirstSeq;
        uint _dropCount;
        ulong _dropFirstFrame;
        ulong _dropLastFrame;
        long _droppedTotal;
        long _unsyncedFrames;
        long _mismatchFrames;

        /// <summary>Every EPISODE_BEGIN / STEP built, with whether it was queued (false: skipped, reported as dropped).</summary>
        public event Action<Message, bool> Sent;
        /// <summary>Every message received from the recorder, after it was handled.</summary>
        public event Action<Message> Received;
        /// <summary>Lines for a log window or the console.</summary>
        public event Action<string> Log;

        public RecorderSession(IEmulatorHost host, SessionOptions options)
        {
            _host = host;
            _opt = options;
            _reconnectDelayMs = options.ReconnectInitialMs;
        }

        public SessionState State { get { return _state; } }
        public Welcome Welcome { get { return _welcome; } }
        public string LastError { get { return _error; } }
        public WebSocketTransport Transport { get { return _transport; } }
        /// <summary>The recorder's latest STATUS this connection, or null before the first.</summary>
        public StatusMsg LastStatus { get { return _lastStatus; } }
        public bool IsFinished { get { return _state == SessionState.Stopped || _state == SessionState.Failed; } }

        void Say(string line)
        {
            Action<string> log = Log;
            if (log != null) log(line);
        }

        long NowMs { get { return _clock.ElapsedMilliseconds; } }

        static ulong UnixMicros()
        {
            return (ulong)((DateTime.UtcNow - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).Ticks / 10);
        }

        // --- connection lifecycle -------------------------------------------------------------

        public void Connect()
        {
            if (_state == SessionState.Connecting || _state == SessionState.Handshake || _state == SessionState.Running
                || _state == SessionState.Closing) return;
            _userClosed = false;
            _fatal = false;
            _stopReceived = false;
            _error = "";
            _attempt = 0;
            _reconnectDelayMs = _opt.ReconnectInitialMs;
            StartConnect();
        }

        void StartConnect()
        {
            Uri uri;
            try
            {
                uri = new Uri(_opt.Url);
                if (uri.Scheme != "ws" && uri.Scheme != "wss") throw new UriFormatException("the address must start with ws://");
            }
            catch (UriFormatException e)
            {
                SetFailed("the recorder address '" + _opt.Url + "' is not valid (" + e.Message + "); enter e.g. ws://127.0.0.1:8765");
                return;
            }
            _attempt++;
            _info = _host.Describe();
            _seq = 1;
            _episode = 0;
            _episodeFirstSeq = 1;
            _framesInStep = 0;
            _lastFrame = -1;
            _await = Await.Nothing;
            _action = null;
            _nextAction = null;
            _lastStatus = null;
            _dropCount = 0;
            _welcome = null;
            _transport = new WebSocketTransport(uri, _opt.QueueCapacity);
            _state = SessionState.Connecting;
            _connection = "connecting to " + _opt.Url + (_attempt > 1 ? " (attempt " + _attempt + ")" : "");
            Say(_connection);
            _transport.Start(_opt.ConnectTimeoutMs);
        }

        /// <summary>End the session at the user's request: send what is queued, then close with 1000.</summary>
        public void Disconnect()
        {
            _userClosed = true;
            if (_state == SessionState.WaitingToReconnect)
            {
                _state = SessionState.Stopped;
                _connection = "disconnected";
                return;
            }
            GiveControlBack();
            if (_transport != null && !IsFinished)
            {
                _connection = "disconnecting";
                _state = SessionState.Closing;
                _transport.Close(1000, "the user disconnected");
            }
        }

        /// <summary>Drop the connection at once, as a crash would.</summary>
        public void Abort()
        {
            _userClosed = true;
            GiveControlBack();
            if (_transport != null) _transport.Abort();
        }

        void Fail(ErrorCode code, string text, bool tellPeer)
        {
            _fatal = true;
            _error = ErrorText.Describe((int)code, text);
            Say("error: " + _error);
            GiveControlBack();
            if (_transport == null) return;
            if (tellPeer)
                _transport.TryEnqueue(Codec.Encode(new ErrorMsg { Code = (ushort)code, Text = text }), true);
            _transport.Close((int)code, text);
            _state = SessionState.Closing;
        }

        void SetFailed(string error)
        {
            _error = error;
            _state = SessionState.Failed;
            _connection = "not connected";
            Say("error: " + error);
        }

        void GiveControlBack()
        {
            _host.ReleaseButtons();
            if (_pausedByUs)
            {
                _pausedByUs = false;
                _host.Unpause();
            }
            _await = Await.Nothing;
        }

        // --- per-frame hooks ------------------------------------------------------------------

        /// <summary>Call from a timer between frames (and whenever the emulator is paused).</summary>
        public void Poll()
        {
            ProcessEvents(0);
            long now = NowMs;
            if (_state == SessionState.Handshake && now - _handshakeStartMs > _opt.HandshakeTimeoutMs)
            {
                Fail(ErrorCode.Unexpected, "no WELCOME from the recorder within " + _opt.HandshakeTimeoutMs / 1000 + " s; is it a sonic-rl recorder?", false);
            }
            if (_state == SessionState.WaitingToReconnect && now >= _reconnectAtMs)
            {
                StartConnect();
            }
            if (_state == SessionState.Running && _welcome.Mode == Mode.Policy)
            {
                if (_await == Await.Action && _nextAction != null)
                {
                    TakeNextAction();
                }
                else if (_await != Await.Nothing && _welcome.StepTimeoutMs > 0 && now - _awaitStartMs > _welcome.StepTimeoutMs)
                {
                    string what = _await == Await.Action ? "the policy's buttons for step " + _seq : "the next episode (RESET)";
                    Fail(ErrorCode.StepTimeout, "waited " + _welcome.StepTimeoutMs / 1000.0 + " s for " + what + "; is the policy or trainer still running?", true);
                }
            }
        }

        /// <summary>Blocks at most timeoutMs for something from the recorder (headless driver loops).</summary>
        public void WaitForActivity(int timeoutMs)
        {
            if (_transport == null) { System.Threading.Thread.Sleep(timeoutMs); return; }
            TransportEvent ev = _transport.NextEvent(timeoutMs);
            if (ev != null) Handle(ev);
        }

        public void OnPreFrame()
        {
            ProcessEvents(0);
            if (_state != SessionState.Running || _welcome.Mode != Mode.Policy) return;
            if (_action == null && _await == Await.Action && _nextAction != null) TakeNextAction();
            if (_action == null)
            {
                // The emulator is running a frame the policy has not chosen buttons for:
                // the user unpaused or frame-advanced while the tool waited. The frame is
                // not part of any STEP; the frame counter jump makes the recorder log a gap.
                _unsyncedFrames++;
                _warning = _unsyncedFrames + " frame(s) ran without the policy's buttons (emulator unpaused by hand?); they are recorded as gaps";
                if (!_host.IsPaused) { _host.Pause(); _pausedByUs = true; }
                return;
            }
            _host.SetButtons(_action.Buttons);
        }

        public void OnPostFrame()
        {
            _fps.Tick();
            ProcessEvents(0);
            if (_state != SessionState.Running) return;
            long frame = _host.FrameCount;
            if (_welcome.Mode == Mode.Human) HumanPostFrame(frame);
            else PolicyPostFrame(frame);
        }

        void HumanPostFrame(long frame)
        {
            if (_lastFrame >= 0 && frame != _lastFrame + 1)
            {
                // A savestate load, a rewind, or a movie seek: the frames before belong to
                // another timeline. Close the partial step honestly and start a new episode
                // from here (the recorder saves the open one as client_stop).
                if (_framesInStep > 0)
                {
                    ReportDropped(_seq, (ulong)(_lastFrame - _framesInStep + 1), (ulong)_lastFrame);
                    _seq++;
                    FlushDropped();
                }
                _framesInStep = 0;
                Say("frame counter jumped from " + _lastFrame + " to " + frame + " (savestate loaded?): starting a new episode");
                _episode++;
                SendEpisodeBegin(_episode);
                return;
            }
            _masks[_framesInStep++] = _host.PressedMask();
            _lastFrame = frame;
            if (_framesInStep == _masks.Length)
            {
                SendStep(frame, true);
                _framesInStep = 0;
            }
        }

        void PolicyPostFrame(long frame)
        {
            if (_action == null)
            {
                _lastFrame = frame;
                return;
            }
            if (_lastFrame >= 0 && frame != _lastFrame + 1)
                Say("frame counter jumped from " + _lastFrame + " to " + frame + "; the recorder records a gap");
            if (_host.PressedMask() != _action.Buttons)
            {
                _mismatchFrames++;
                _warning = _mismatchFrames + " frame(s) where the core did not get the policy's buttons (a movie playing, or a held key?)";
            }
            _masks[_framesInStep++] = _action.Buttons;
            _lastFrame = frame;
            if (_framesInStep < _masks.Length) return;
            SendStep(frame, false);
            _framesInStep = 0;
            _action = null;
            _await = Await.Action;
            _awaitStartMs = NowMs;
            // Lockstep: wait a moment for the next ACTION (or an EPISODE_END + RESET), then
            // pause instead of blocking the UI thread.
            long deadline = NowMs + _opt.LockstepSpinMs;
            while (_state == SessionState.Running && !(_await == Await.Action && _nextAction != null))
            {
                long left = deadline - NowMs;
                if (left <= 0) break;
                TransportEvent ev = _transport.NextEvent((int)left);
                if (ev != null) Handle(ev);
            }
            if (_state != SessionState.Running) return;
            if (_await == Await.Action && _nextAction != null) TakeNextAction();
            else PauseForPolicy();
        }

        void TakeNextAction()
        {
            _action = _nextAction;
            _nextAction = null;
            _await = Await.Nothing;
            if (_pausedByUs)
            {
                _pausedByUs = false;
                _host.Unpause();
            }
        }

        void PauseForPolicy()
        {
            if (!_host.IsPaused)
            {
                _host.Pause();
                _pausedByUs = true;
            }
        }

        // --- sending --------------------------------------------------------------------------

        bool Fits(byte[] data, string what)
        {
            if (!_opt.CheckSizeBeforeSending || data.Length <= Limits.MaxMessageBytes) return true;
            Fail(ErrorCode.MessageTooBig, what + " would be " + data.Length + " bytes, over the 16 MiB limit; lower the screen size", false);
            return false;
        }

        void SendEpisodeBegin(uint episode)
        {
            bool screen = (_welcome.Send & SendFlag.Screen) != 0;
            bool ram = (_welcome.Send & SendFlag.Ram) != 0;
            EpisodeBegin b = new EpisodeBegin();
            b.Episode = episode;
            b.Frame = (ulong)Math.Max(0, _host.FrameCount);
            b.TimeUs = UnixMicros();
            if ((_welcome.Send & SendFlag.StartState) != 0) b.StartState = _host.StartStateBytes();
            b.Observation = _host.Capture(screen, ram);
            byte[] data = Codec.Encode(b);
            if (!Fits(data, "EPISODE_BEGIN")) return;
            _transport.TryEnqueue(data, true);
            _lastFrame = _host.FrameCount;
            _episode = episode;
            _episodeFirstSeq = _seq;
            _framesInStep = 0;
            Action<Message, bool> sent = Sent;
            if (sent != null) sent(b, true);
        }

        void SendStep(long frame, bool droppable)
        {
            bool screen = (_welcome.Send & SendFlag.Screen) != 0;
            bool ram = (_welcome.Send & SendFlag.Ram) != 0;
            Step s = new Step();
            s.Seq = _seq++;
            s.Frame = (ulong)frame;
            s.TimeUs = UnixMicros();
            s.Buttons = (uint[])_masks.Clone();
            bool queued;
            if (droppable && _transport.Queued >= _transport.Capacity)
            {
                // The recorder is falling behind: skip this STEP without building it,
                // remember it, and tell the recorder before the next STEP that fits.
                ReportDropped(s.Seq, (ulong)(frame - _masks.Length + 1), (ulong)frame);
                queued = false;
            }
            else
            {
                s.Observation = _host.Capture(screen, ram);
                byte[] data = Codec.Encode(s);
                if (!Fits(data, "STEP")) return;
                FlushDropped();
                queued = _transport.TryEnqueue(data, !droppable);
                if (!queued) ReportDropped(s.Seq, (ulong)(frame - _masks.Length + 1), (ulong)frame);
            }
            Action<Message, bool> sent = Sent;
            if (sent != null) sent(s, queued);
        }

        void ReportDropped(uint seq, ulong firstFrame, ulong lastFrame)
        {
            if (_dropCount == 0)
            {
                _dropFirstSeq = seq;
                _dropFirstFrame = firstFrame;
            }
            _dropCount++;
            _dropLastFrame = lastFrame;
            _droppedTotal++;
            _warning = "the recorder is falling behind: " + _droppedTotal + " step(s) skipped so far (reported to it as gaps)";
        }

        void FlushDropped()
        {
            if (_dropCount == 0) return;
            FramesDropped d = new FramesDropped
            {
                FirstSeq = _dropFirstSeq,
                Count = _dropCount,
                FirstFrame = _dropFirstFrame,
                LastFrame = _dropLastFrame,
            };
            _transport.TryEnqueue(Codec.Encode(d), true);
            Say("told the recorder that " + _dropCount + " step(s) from seq " + _dropFirstSeq + " were skipped");
            _dropCount = 0;
        }

        // --- receiving ------------------------------------------------------------------------

        void ProcessEvents(int waitMs)
        {
            if (_transport == null) return;
            TransportEvent ev = _transport.NextEvent(waitMs);
            while (ev != null)
            {
                Handle(ev);
                if (_transport == null) return;
                ev = _transport.NextEvent(0);
            }
        }

        void Handle(TransportEvent ev)
        {
            switch (ev.Kind)
            {
                case TransportEventKind.Opened:
                    OnOpened();
                    break;
                case TransportEventKind.Message:
                    if (_fatal || _stopReceived) break;
                    Message msg;
                    try
                    {
                        if (ev.Data.Length == 0)
                            throw new ProtocolException(ErrorCode.Malformed, "the recorder sent a text or empty message; only binary protocol messages are allowed");
                        msg = Codec.Decode(ev.Data);
                    }
                    catch (ProtocolException e)
                    {
                        Fail(e.Code, e.Message, true);
                        break;
                    }
                    try
                    {
                        OnMessage(msg);
                    }
                    catch (ProtocolException e)
                    {
                        Fail(e.Code, e.Message, true);
                    }
                    Action<Message> received = Received;
                    if (received != null) received(msg);
                    break;
                case TransportEventKind.Closed:
                    OnClosed(ev.Code, ev.Reason);
                    break;
            }
        }

        void OnOpened()
        {
            EmulatorInfo info = _info;
            int w, h;
            _host.ScreenSize(out w, out h);
            Hello hello = new Hello
            {
                ClientName = _opt.ClientName,
                ClientVersion = _opt.ClientVersion,
                Emulator = info.Emulator,
                Core = info.Core,
                System = info.System,
                RomName = info.RomName,
                RomHash = info.RomHash,
                Game = _opt.Game ?? "",
                Mode = _opt.Mode,
                ScreenWidth = w,
                ScreenHeight = h,
                PixelFormat = info.PixelFormat,
                RamSize = info.RamSize,
                Buttons = info.Buttons,
                Token = _opt.Token ?? "",
                Capabilities = Capability.SendStartState | (info.CanLoadStartState ? Capability.LoadStartState : Capability.None),
            };
            _transport.TryEnqueue(Codec.Encode(hello), true);
            _state = SessionState.Handshake;
            _handshakeStartMs = NowMs;
            _connection = "connected to " + _opt.Url + ", handshake";
            Say(_connection);
        }

        static ProtocolException Unexpected(string text)
        {
            return new ProtocolException(ErrorCode.Unexpected, text);
        }

        void OnMessage(Message msg)
        {
            if (msg.Kind == Kind.Error)
            {
                ErrorMsg e = (ErrorMsg)msg;
                _fatal = true;
                _error = "the recorder refused: " + ErrorText.Describe(e.Code, e.Text);
                Say(_error);
                GiveControlBack();
                _state = SessionState.Closing;
                return;
            }
            if (_state == SessionState.Handshake)
            {
                if (msg.Kind != Kind.Welcome) throw Unexpected(msg.Kind + " before WELCOME");
                OnWelcome((Welcome)msg);
                return;
            }
            if (_state != SessionState.Running) return;
            bool policy = _welcome.Mode == Mode.Policy;
            switch (msg.Kind)
            {
                case Kind.Action:
                {
                    ActionMsg a = (ActionMsg)msg;
                    if (!policy) throw Unexpected("ACTION in human mode");
                    if (_await != Await.Action || _nextAction != null)
                        throw Unexpected("ACTION for seq " + a.Seq + " while no ACTION was awaited");
                    if (a.Seq != _seq) throw Unexpected("ACTION for seq " + a.Seq + ", expected seq " + _seq);
                    _nextAction = a;
                    break;
                }
                case Kind.Reset:
                {
                    Reset r = (Reset)msg;
                    if (!policy) throw Unexpected("RESET in human mode");
                    if (_await != Await.Reset) throw Unexpected("RESET in the middle of an episode");
                    if (r.LoadStartState)
                    {
                        string err;
                        if (!_host.LoadStartState(out err))
                        {
                            Fail(ErrorCode.BadConfig, "cannot load the start state: " + err, true);
                            return;
                        }
                    }
                    SendEpisodeBegin(r.Episode);
                    _await = Await.Action;
                    _awaitStartMs = NowMs;
                    break;
                }
                case Kind.EpisodeEnd:
                {
                    EpisodeEnd e = (EpisodeEnd)msg;
                    _lastEpisode = "episode " + e.Episode + ": " + e.Steps + " steps, return " + e.Return.ToString("0.###")
                                   + ", " + EndReasonText.Name(e.Reason) + (e.FileName.Length > 0 ? ", saved " + e.FileName : "");
                    Say(_lastEpisode);
                    if (policy)
                    {
                        // RESET or STOP comes next; the emulator stays paused meanwhile.
                        _await = Await.Reset;
                        _awaitStartMs = NowMs;
                        _nextAction = null;
                    }
                    else
                    {
                        // Human mode: the next episode starts from the last observation at once.
                        _episode = e.Episode + 1;
                        _episodeFirstSeq += e.Steps;
                    }
                    break;
                }
                case Kind.Status:
                    // Display only, in both modes: it never touches the lockstep or the buttons.
                    _lastStatus = (StatusMsg)msg;
                    break;
                case Kind.Stop:
                {
                    Stop s = (Stop)msg;
                    _stopReceived = true;
                    _connection = "recorder finished" + (s.Text.Length > 0 ? ": " + s.Text : "");
                    Say("STOP: " + (s.Reason == StopReason.Done ? "done" : "recorder shutting down") + (s.Text.Length > 0 ? " - " + s.Text : ""));
                    GiveControlBack();
                    _transport.Close(1000, "stop received");
                    _state = SessionState.Closing;
                    break;
                }
                default:
                    throw Unexpected(msg.Kind + " is not sent by a recorder");
            }
        }

        void OnWelcome(Welcome w)
        {
            if (w.FrameSkip < 1) throw new ProtocolException(ErrorCode.Malformed, "WELCOME frame skip is 0");
            if (w.Mode != Mode.Human && w.Mode != Mode.Policy) throw new ProtocolException(ErrorCode.Malformed, "WELCOME mode must be human or policy");
            _welcome = w;
            _masks = new uint[w.FrameSkip];
            _state = SessionState.Running;
            _reconnectDelayMs = _opt.ReconnectInitialMs;
            _attempt = 0;
            _connection = "connected to " + _opt.Url + " (session " + w.SessionId + ")";
            Say(_connection + ", game " + w.ProfileId + ", " + (w.Mode == Mode.Policy ? "policy" : "human") + " mode, frame skip " + w.FrameSkip);
            if (w.Mode == Mode.Human)
            {
                SendEpisodeBegin(0);
            }
            else
            {
                _await = Await.Reset;
                _awaitStartMs = NowMs;
                PauseForPolicy();
            }
        }

        void OnClosed(int code, string reason)
        {
            GiveControlBack();
            bool wasRunning = _state == SessionState.Running;
            _transport = null;
            string said = ErrorText.Describe(code, reason);
            if (_stopReceived || (_userClosed && !_fatal))
            {
                _state = SessionState.Stopped;
                if (!_stopReceived) _connection = "disconnected";
                Say("closed: " + _connection);
                return;
            }
            if (_fatal || (code != 1006 && code != 1001 && code != 1011 && code != 1005))
            {
                // A refusal the user must fix (token, game, sizes, protocol): retrying would
                // only repeat it. Keep the recorder's own words (the ERROR message) if any.
                if (_error.Length == 0) _error = "the recorder closed the connection: " + said;
                _state = SessionState.Failed;
                _connection = "not connected";
                Say("closed: " + said);
                return;
            }
            if (!_opt.Reconnect)
            {
                _error = (wasRunning ? "connection lost: " : "") + reason + " (" + ErrorText.Explain(code) + ")";
                _state = SessionState.Failed;
                _connection = "not connected";
                Say("error: " + _error);
                return;
            }
            _reconnectAtMs = NowMs + _reconnectDelayMs;
            _connection = (wasRunning ? "connection lost" : "cannot connect") + " (" + reason + "); retrying in "
                          + (_reconnectDelayMs / 1000.0).ToString("0.0") + " s";
            Say(_connection);
            _reconnectDelayMs = Math.Min(_opt.ReconnectMaxMs, _reconnectDelayMs * 2);
            _state = SessionState.WaitingToReconnect;
        }

        // --- status ---------------------------------------------------------------------------

        public SessionStatus Status()
        {
            SessionStatus s = new SessionStatus();
            s.State = _state;
            s.Connection = _connection;
            if (_welcome != null)
            {
                s.Mode = _welcome.Mode == Mode.Policy ? "policy plays" : "human plays (recording)";
                s.SessionId = _welcome.SessionId;
                s.Profile = _welcome.ProfileId;
                s.StepTimeoutMs = _welcome.StepTimeoutMs;
            }
            s.Episode = _episode;
            s.Step = (long)_seq - _episodeFirstSeq;
            s.LastEpisode = _lastEpisode;
            // A STATUS of an episode that has ended says nothing about the one being played.
            if (_lastStatus != null && _lastStatus.Episode == _episode)
            {
                s.HasReward = true;
                s.LastReward = _lastStatus.LastReward;
                s.EpisodeReturn = _lastStatus.Return;
                s.RewardStep = _lastStatus.Steps;
            }
            s.FramesPerSecond = _fps.Rate;
            if (_transport != null)
            {
                s.Queued = _transport.Queued;
                s.QueueCapacity = _transport.Capacity;
            }
            s.DroppedSteps = _droppedTotal;
            s.UnsyncedFrames = _unsyncedFrames;
            s.ButtonMismatchFrames = _mismatchFrames;
            if (_state == SessionState.Running && _await != Await.Nothing) s.WaitingMs = NowMs - _awaitStartMs;
            s.Warning = _warning;
            s.Error = _error;
            return s;
        }
    }
}
