// Sans-I/O codec for docs/protocol.md: messages to bytes and back, nothing else.
// All integers little-endian, no padding; every read is bounds-checked and any
// overrun, trailing byte or bad size is a ProtocolException(4000), like
// recorder/protocol.py's MalformedMessage.
using System;
using System.Text;

namespace SonicRL.Tool
{
    /// <summary>Growable little-endian writer for one message.</summary>
    public sealed class WireWriter
    {
        byte[] _buf;
        int _pos;
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);

        public WireWriter(int capacity)
        {
            _buf = new byte[Math.Max(16, capacity)];
        }

        public int Length { get { return _pos; } }

        void Ensure(int n)
        {
            if (_pos + n <= _buf.Length) return;
            int size = _buf.Length;
            while (size < _pos + n) size *= 2;
            Array.Resize(ref _buf, size);
        }

        public void U8(int v) { Ensure(1); _buf[_pos++] = (byte)v; }

        public void U16(int v)
        {
            Ensure(2);
            _buf[_pos++] = (byte)v;
            _buf[_pos++] = (byte)(v >> 8);
        }

        public void U32(uint v)
        {
            Ensure(4);
            for (int i = 0; i < 4; i++) _buf[_pos++] = (byte)(v >> (8 * i));
        }

        public void U64(ulong v)
        {
            Ensure(8);
            for (int i = 0; i < 8; i++) _buf[_pos++] = (byte)(v >> (8 * i));
        }

        public void F64(double v)
        {
            U64((ulong)BitConverter.DoubleToInt64Bits(v));
        }

        public void Bytes(byte[] data)
        {
            Ensure(data.Length);
            Buffer.BlockCopy(data, 0, _buf, _pos, data.Length);
            _pos += data.Length;
        }

        public void Str(string s, string what)
        {
            byte[] data = Utf8.GetBytes(s ?? "");
            if (data.Length > Limits.MaxStringBytes)
                throw new ArgumentException(what + " is " + data.Length + " bytes, over the " + Limits.MaxStringBytes + "-byte limit");
            U16(data.Length);
            Bytes(data);
        }

        public byte[] ToArray()
        {
            if (_pos == _buf.Length) return _buf;
            byte[] outp = new byte[_pos];
            Buffer.BlockCopy(_buf, 0, outp, 0, _pos);
            return outp;
        }
    }

    /// <summary>Bounds-checked little-endian cursor over one received message.</summary>
    public sealed class WireReader
    {
        readonly byte[] _buf;
        readonly int _end;
        int _pos;
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);

        public WireReader(byte[] buf, int length, int pos)
        {
            _buf = buf;
            _end = length;
            _pos = pos;
        }

        static ProtocolException Malformed(string text)
        {
            return new ProtocolException(ErrorCode.Malformed, text);
        }

        int Take(int n, string what)
        {
            if (n < 0 || _pos + n > _end)
                throw Malformed("message ends inside " + what + " (needs " + n + " bytes at offset " + _pos + ")");
            int at = _pos;
            _pos += n;
            return at;
        }

        public byte U8(string what) { return _buf[Take(1, what)]; }

        public ushort U16(string what)
        {
            int at = Take(2, what);
            return (ushort)(_buf[at] | (_buf[at + 1] << 8));
        }

        public short I16(string what) { return unchecked((short)U16(what)); }

        public uint U32(string what)
        {
            int at = Take(4, what);
            return (uint)(_buf[at] | (_buf[at + 1] << 8) | (_buf[at + 2] << 16) | (_buf[at + 3] << 24));
        }

        public ulong U64(string what)
        {
            int at = Take(8, what);
            ulong v = 0;
            for (int i = 7; i >= 0; i--) v = (v << 8) | _buf[at + i];
            return v;
        }

        public double F64(string what) { return BitConverter.Int64BitsToDouble((long)U64(what)); }

        public byte[] Bytes(int n, string what)
        {
            int at = Take(n, what);
            byte[] outp = new byte[n];
            Buffer.BlockCopy(_buf, at, outp, 0, n);
            return outp;
        }

        public string Str(string what)
        {
            int n = U16(what);
            if (n > Limits.MaxStringBytes)
                throw Malformed(what + " is " + n + " bytes, over the " + Limits.MaxStringBytes + "-byte limit");
            int at = Take(n, what);
            try
            {
                return Utf8.GetString(_buf, at, n);
            }
            catch (DecoderFallbackException)
            {
                throw Malformed(what + " is not valid UTF-8");
            }
        }

        public void End(Kind kind)
        {
            if (_pos != _end)
                throw Malformed(kind.ToString().ToUpperInvariant() + " has " + (_end - _pos) + " unexpected trailing bytes");
        }
    }

    /// <summary>Encode and decode every message of docs/protocol.md.</summary>
    public static class Codec
    {
        // --- encode ------------------------------------------------------------------------

        static int ObservationSize(Observation o)
        {
            return 9 + o.Pixels.Length + 4 + o.Ram.Length;
        }

        static void WriteObservation(WireWriter w, Observation o)
        {
            w.U16(o.Width);
            w.U16(o.Height);
            w.U8((byte)o.Format);
            w.U32((uint)o.Pixels.Length);
            w.Bytes(o.Pixels);
            w.U32((uint)o.Ram.Length);
            w.Bytes(o.Ram);
        }

        public static byte[] Encode(Message msg)
        {
            WireWriter w;
            switch (msg.Kind)
            {
                case Kind.Hello:
                {
                    Hello h = (Hello)msg;
                    if (h.Buttons.Length > Limits.MaxButtons)
                        throw new ArgumentException("at most " + Limits.MaxButtons + " buttons");
                    w = new WireWriter(256);
                    w.U8((byte)Kind.Hello);
                    w.U16(h.ProtocolVersion);
                    w.Str(h.ClientName, "client name");
                    w.Str(h.ClientVersion, "client version");
                    w.Str(h.Emulator, "emulator");
                    w.Str(h.Core, "core");
                    w.Str(h.System, "system");
                    w.Str(h.RomName, "ROM name");
                    w.Str(h.RomHash, "ROM hash");
                    w.Str(h.Game, "game");
                    w.U8((byte)h.Mode);
                    w.U16(h.ScreenWidth);
                    w.U16(h.ScreenHeight);
                    w.U8((byte)h.PixelFormat);
                    w.U32((uint)h.RamSize);
                    w.U8(h.Buttons.Length);
                    foreach (string b in h.Buttons) w.Str(b, "button name");
                    w.Str(h.Token, "token");
                    w.U8((byte)h.Capabilities);
                    return w.ToArray();
                }
                case Kind.EpisodeBegin:
                {
                    EpisodeBegin b = (EpisodeBegin)msg;
                    w = new WireWriter(25 + b.StartState.Length + ObservationSize(b.Observation));
                    w.U8((byte)Kind.EpisodeBegin);
                    w.U32(b.Episode);
                    w.U64(b.Frame);
                    w.U64(b.TimeUs);
                    w.U32((uint)b.StartState.Length);
                    w.Bytes(b.StartState);
                    WriteObservation(w, b.Observation);
                    return w.ToArray();
                }
                case Kind.Step:
                {
                    Step s = (Step)msg;
                    if (s.Buttons.Length < 1 || s.Buttons.Length > Limits.MaxFramesPerStep)
                        throw new ArgumentException("a step holds 1.." + Limits.MaxFramesPerStep + " frames, got " + s.Buttons.Length);
                    w = new WireWriter(22 + 4 * s.Buttons.Length + ObservationSize(s.Observation));
                    w.U8((byte)Kind.Step);
                    w.U32(s.Seq);
                    w.U64(s.Frame);
                    w.U64(s.TimeUs);
                    w.U8(s.Buttons.Length);
                    foreach (uint m in s.Buttons) w.U32(m);
                    WriteObservation(w, s.Observation);
                    return w.ToArray();
                }
                case Kind.FramesDropped:
                {
                    FramesDropped d = (FramesDropped)msg;
                    w = new WireWriter(25);
                    w.U8((byte)Kind.FramesDropped);
                    w.U32(d.FirstSeq);
                    w.U32(d.Count);
                    w.U64(d.FirstFrame);
                    w.U64(d.LastFrame);
                    return w.ToArray();
                }
                case Kind.Welcome:
                {
                    Welcome m = (Welcome)msg;
                    w = new WireWriter(64);
                    w.U8((byte)Kind.Welcome);
                    w.U16(m.ProtocolVersion);
                    w.Str(m.ServerName, "server name");
                    w.Str(m.ServerVersion, "server version");
                    w.Str(m.SessionId, "session id");
                    w.Str(m.ProfileId, "profile id");
                    w.U8((byte)m.Mode);
                    w.U8(m.FrameSkip);
                    w.U8((byte)m.Send);
                    w.U32(m.StepTimeoutMs);
                    w.U32(m.MaxSteps);
                    return w.ToArray();
                }
                case Kind.Action:
                {
                    ActionMsg a = (ActionMsg)msg;
                    w = new WireWriter(15);
                    w.U8((byte)Kind.Action);
                    w.U32(a.Seq);
                    w.U32(a.Buttons);
                    w.U16(unchecked((ushort)a.Action));
                    w.U32(a.PolicyVersion);
                    return w.ToArray();
                }
                case Kind.Reset:
                {
                    Reset r = (Reset)msg;
                    w = new WireWriter(6);
                    w.U8((byte)Kind.Reset);
                    w.U32(r.Episode);
                    w.U8(r.LoadStartState ? 1 : 0);
                    return w.ToArray();
                }
                case Kind.EpisodeEnd:
                {
                    EpisodeEnd e = (EpisodeEnd)msg;
                    w = new WireWriter(32);
                    w.U8((byte)Kind.EpisodeEnd);
                    w.U32(e.Episode);
                    w.U32(e.Steps);
                    w.U8(e.Reason);
                    w.U8((e.Terminated ? 1 : 0) | (e.Truncated ? 2 : 0));
                    w.F64(e.Return);
                    w.Str(e.FileName, "file name");
                    return w.ToArray();
                }
                case Kind.Status:
                {
                    StatusMsg st = (StatusMsg)msg;
                    w = new WireWriter(25);
                    w.U8((byte)Kind.Status);
                    w.U32(st.Episode);
                    w.U32(st.Steps);
                    w.F64(st.LastReward);
                    w.F64(st.Return);
                    return w.ToArray();
                }
                case Kind.Stop:
                {
                    Stop s = (Stop)msg;
                    w = new WireWriter(16);
                    w.U8((byte)Kind.Stop);
                    w.U8((byte)s.Reason);
                    w.Str(s.Text, "stop message");
                    return w.ToArray();
                }
                case Kind.Error:
                {
                    ErrorMsg e = (ErrorMsg)msg;
                    w = new WireWriter(16);
                    w.U8((byte)Kind.Error);
                    w.U16(e.Code);
                    w.Str(e.Text, "error message");
                    return w.ToArray();
                }
                default:
                    throw new ArgumentException("not a protocol message: " + msg.Kind);
            }
        }

        // --- decode ------------------------------------------------------------------------

        /// <summary>Parse one binary websocket message; throws ProtocolException for any bad input.</summary>
        public static Message Decode(byte[] data, int length)
        {
            if (length > Limits.MaxMessageBytes)
                throw new ProtocolException(ErrorCode.MessageTooBig, "message of " + length + " bytes exceeds the " + Limits.MaxMessageBytes + "-byte limit");
            if (length == 0)
                throw new ProtocolException(ErrorCode.Malformed, "empty message");
            byte kindByte = data[0];
            if (!Enum.IsDefined(typeof(Kind), kindByte))
                throw new ProtocolException(ErrorCode.UnknownKind, "unknown message kind 0x" + kindByte.ToString("x2"));
            Kind kind = (Kind)kindByte;
            WireReader r = new WireReader(data, length, 1);
            Message msg = DecodeBody(kind, r);
            r.End(kind);
            return msg;
        }

        public static Message Decode(byte[] data)
        {
            return Decode(data, data.Length);
        }

        static Observation ReadObservation(WireReader r)
        {
            Observation o = new Observation();
            o.Width = r.U16("observation header");
            o.Height = r.U16("observation header");
            byte fmt = r.U8("observation header");
            uint nPixels = r.U32("observation header");
            if (fmt > 2) throw new ProtocolException(ErrorCode.Malformed, "pixel format " + fmt + " is not one of the known values");
            o.Format = (PixelFormat)fmt;
            if (o.Width > Limits.MaxScreenSide || o.Height > Limits.MaxScreenSide)
                throw new ProtocolException(ErrorCode.Malformed, "screen " + o.Width + "x" + o.Height + " exceeds " + Limits.MaxScreenSide + " pixels a side");
            long expected = (long)o.Width * o.Height * Observation.BytesPerPixel(o.Format);
            if (nPixels != expected)
                throw new ProtocolException(ErrorCode.Malformed, "screen " + o.Width + "x" + o.Height + " " + o.Format + " needs " + expected + " pixel bytes, message says " + nPixels);
            o.Pixels = r.Bytes((int)nPixels, "pixels");
            uint nRam = r.U32("RAM");
            if (nRam > Limits.MaxRamBytes)
                throw new ProtocolException(ErrorCode.Malformed, "RAM is " + nRam + " bytes, over the " + Limits.MaxRamBytes + "-byte limit");
            o.Ram = r.Bytes((int)nRam, "RAM");
            return o;
        }

        static Message DecodeBody(Kind kind, WireReader r)
        {
            switch (kind)
            {
                case Kind.Hello:
                {
                    Hello h = new Hello();
                    h.ProtocolVersion = r.U16("protocol version");
                    if (h.ProtocolVersion != Limits.ProtocolVersion)
                        throw new ProtocolException(ErrorCode.VersionMismatch, "client speaks protocol version " + h.ProtocolVersion + ", this side speaks " + Limits.ProtocolVersion);
                    h.ClientName = r.Str("client name");
                    h.ClientVersion = r.Str("client version");
                    h.Emulator = r.Str("emulator");
                    h.Core = r.Str("core");
                    h.System = r.Str("system");
                    h.RomName = r.Str("ROM name");
                    h.RomHash = r.Str("ROM hash");
                    h.Game = r.Str("game");
                    h.Mode = CheckedMode(r.U8("HELLO screen fields"));
                    h.ScreenWidth = r.U16("HELLO screen fields");
                    h.ScreenHeight = r.U16("HELLO screen fields");
                    byte fmt = r.U8("HELLO screen fields");
                    if (fmt > 2) throw new ProtocolException(ErrorCode.Malformed, "pixel format " + fmt + " is not one of the known values");
                    h.PixelFormat = (PixelFormat)fmt;
                    h.RamSize = (int)r.U32("HELLO screen fields");
                    int n = r.U8("button count");
                    if (n > Limits.MaxButtons)
                        throw new ProtocolException(ErrorCode.Malformed, n + " buttons declared, at most " + Limits.MaxButtons + " allowed");
                    h.Buttons = new string[n];
                    for (int i = 0; i < n; i++) h.Buttons[i] = r.Str("button name");
                    h.Token = r.Str("token");
                    h.Capabilities = (Capability)(r.U8("capabilities") & 3);
                    return h;
                }
                case Kind.Welcome:
                {
                    Welcome m = new Welcome();
                    m.ProtocolVersion = r.U16("protocol version");
                    if (m.ProtocolVersion != Limits.ProtocolVersion)
                        throw new ProtocolException(ErrorCode.VersionMismatch, "recorder speaks protocol version " + m.ProtocolVersion + ", this tool speaks " + Limits.ProtocolVersion);
                    m.ServerName = r.Str("server name");
                    m.ServerVersion = r.Str("server version");
                    m.SessionId = r.Str("session id");
                    m.ProfileId = r.Str("profile id");
                    m.Mode = CheckedMode(r.U8("WELCOME fields"));
                    m.FrameSkip = r.U8("WELCOME fields");
                    m.Send = (SendFlag)(r.U8("WELCOME fields") & 7);
                    m.StepTimeoutMs = r.U32("WELCOME fields");
                    m.MaxSteps = r.U32("WELCOME fields");
                    return m;
                }
                case Kind.EpisodeBegin:
                {
                    EpisodeBegin b = new EpisodeBegin();
                    b.Episode = r.U32("EPISODE_BEGIN header");
                    b.Frame = r.U64("EPISODE_BEGIN header");
                    b.TimeUs = r.U64("EPISODE_BEGIN header");
                    uint n = r.U32("EPISODE_BEGIN header");
                    if (n > Limits.MaxStartStateBytes)
                        throw new ProtocolException(ErrorCode.Malformed, "start state of " + n + " bytes exceeds " + Limits.MaxStartStateBytes);
                    b.StartState = r.Bytes((int)n, "start state");
                    b.Observation = ReadObservation(r);
                    return b;
                }
                case Kind.Step:
                {
                    Step s = new Step();
                    s.Seq = r.U32("STEP header");
                    s.Frame = r.U64("STEP header");
                    s.TimeUs = r.U64("STEP header");
                    int n = r.U8("STEP header");
                    if (n == 0) throw new ProtocolException(ErrorCode.Malformed, "STEP holds no frames");
                    s.Buttons = new uint[n];
                    for (int i = 0; i < n; i++) s.Buttons[i] = r.U32("button masks");
                    s.Observation = ReadObservation(r);
                    return s;
                }
                case Kind.FramesDropped:
                {
                    FramesDropped d = new FramesDropped();
                    d.FirstSeq = r.U32("FRAMES_DROPPED");
                    d.Count = r.U32("FRAMES_DROPPED");
                    d.FirstFrame = r.U64("FRAMES_DROPPED");
                    d.LastFrame = r.U64("FRAMES_DROPPED");
                    return d;
                }
                case Kind.Action:
                {
                    ActionMsg a = new ActionMsg();
                    a.Seq = r.U32("ACTION");
                    a.Buttons = r.U32("ACTION");
                    a.Action = r.I16("ACTION");
                    a.PolicyVersion = r.U32("ACTION");
                    return a;
                }
                case Kind.Reset:
                {
                    Reset m = new Reset();
                    m.Episode = r.U32("RESET");
                    m.LoadStartState = r.U8("RESET") != 0;
                    return m;
                }
                case Kind.EpisodeEnd:
                {
                    EpisodeEnd e = new EpisodeEnd();
                    e.Episode = r.U32("EPISODE_END");
                    e.Steps = r.U32("EPISODE_END");
                    e.Reason = r.U8("EPISODE_END");
                    byte flags = r.U8("EPISODE_END");
                    e.Terminated = (flags & 1) != 0;
                    e.Truncated = (flags & 2) != 0;
                    e.Return = r.F64("EPISODE_END");
                    e.FileName = r.Str("file name");
                    return e;
                }
                case Kind.Status:
                {
                    StatusMsg st = new StatusMsg();
                    st.Episode = r.U32("STATUS");
                    st.Steps = r.U32("STATUS");
                    st.LastReward = r.F64("STATUS");
                    st.Return = r.F64("STATUS");
                    return st;
                }
                case Kind.Stop:
                {
                    Stop s = new Stop();
                    byte reason = r.U8("stop reason");
                    if (reason > 1) throw new ProtocolException(ErrorCode.Malformed, "stop reason " + reason + " is not one of the known values");
                    s.Reason = (StopReason)reason;
                    s.Text = r.Str("stop message");
                    return s;
                }
                default:
                {
                    ErrorMsg e = new ErrorMsg();
                    e.Code = r.U16("error code");
                    e.Text = r.Str("error message");
                    return e;
                }
            }
        }

        static Mode CheckedMode(byte value)
        {
            if (value > 2) throw new ProtocolException(ErrorCode.Malformed, "mode " + value + " is not one of the known values");
            return (Mode)value;
        }
    }
}
