// The sonic-rl wire protocol, version 1: codes, limits and message types.
//
// This is the C# twin of recorder/protocol.py; both follow docs/protocol.md byte
// for byte. Nothing in Core/ references BizHawk, so the headless test client and
// CI build it with Mono's mcs alone (C# 7: no nullable annotations, no switch
// expressions, no `using var`).
using System;
using System.Collections.Generic;

namespace SonicRL.Tool
{
    /// <summary>Limits of docs/protocol.md, "Size limits".</summary>
    public static class Limits
    {
        public const int ProtocolVersion = 1;
        public const int MaxMessageBytes = 16 * 1024 * 1024;
        public const int MaxStringBytes = 1024;
        public const int MaxButtons = 32;
        public const int MaxFramesPerStep = 255;
        public const int MaxScreenSide = 1024;
        public const int MaxRamBytes = 1024 * 1024;
        public const int MaxStartStateBytes = 8 * 1024 * 1024;
        /// <summary>Websocket close reasons are at most 123 bytes (RFC 6455 section 5.5).</summary>
        public const int MaxCloseReasonBytes = 123;
    }

    /// <summary>Byte 0 of every message. 0x01-0x3F client to server, 0x41-0x7E server to client.</summary>
    public enum Kind : byte
    {
        Hello = 0x01,
        EpisodeBegin = 0x02,
        Step = 0x03,
        FramesDropped = 0x04,
        Welcome = 0x41,
        Action = 0x42,
        Reset = 0x43,
        EpisodeEnd = 0x44,
        Stop = 0x45,
        Status = 0x46,
        Error = 0x7F,
    }

    public enum Mode : byte
    {
        Any = 0,
        Human = 1,
        Policy = 2,
    }

    public enum PixelFormat : byte
    {
        None = 0,
        Rgb24 = 1,
        /// <summary>B, G, R, A: BizHawk's int 0xAARRGGBB copied on a little-endian CPU.</summary>
        Bgra32 = 2,
    }

    [Flags]
    public enum Capability : byte
    {
        None = 0,
        LoadStartState = 1,
        SendStartState = 2,
    }

    [Flags]
    public enum SendFlag : byte
    {
        None = 0,
        Screen = 1,
        Ram = 2,
        StartState = 4,
    }

    public enum StopReason : byte
    {
        Done = 0,
        Shutdown = 1,
    }

    /// <summary>ERROR codes, equal to the websocket close code sent after them.</summary>
    public enum ErrorCode : ushort
    {
        Normal = 1000,
        GoingAway = 1001,
        AbnormalClosure = 1006,
        MessageTooBig = 1009,
        InternalError = 1011,
        TryAgainLater = 1013,
        Malformed = 4000,
        UnknownKind = 4001,
        VersionMismatch = 4002,
        Unexpected = 4003,
        AuthFailed = 4004,
        UnknownGame = 4005,
        BadConfig = 4006,
        StepTimeout = 4007,
    }

    /// <summary>What each code means and what the user can do about it (shown on the form).</summary>
    public static class ErrorText
    {
        static readonly Dictionary<int, string> Explanations = new Dictionary<int, string>
        {
            { 1000, "session ended normally" },
            { 1001, "the recorder is shutting down" },
            { 1006, "the connection dropped without a close message; is the recorder still running?" },
            { 1009, "a message exceeded the 16 MiB limit; lower the screen size (BizHawk: Config > Display) or check the tool" },
            { 1011, "internal error in the recorder; see its log" },
            { 1013, "the recorder already serves as many clients as it takes; the tool tries again" },
            { 4000, "a message could not be decoded; the tool and the recorder disagree on docs/protocol.md, update one of them" },
            { 4001, "unknown message kind; use matching versions of the tool and the recorder" },
            { 4002, "protocol version mismatch; use matching versions of the tool and the recorder" },
            { 4003, "a message was not allowed at this point of the session; reconnect, and report it if it repeats" },
            { 4004, "wrong or missing token; enter the token the recorder was started with (sonic-rec record --token)" },
            { 4005, "no game profile for this ROM; load a supported ROM or start the recorder with --game" },
            { 4006, "the system, screen, buttons or RAM do not fit the game profile; check that the profile is for this system, the core (the tool window names the RAM domain it reads) and the controller type" },
            { 4007, "the other side stopped answering within the step timeout; check that the policy is running, or raise --step-timeout" },
        };

        public static string Explain(int code)
        {
            string text;
            return Explanations.TryGetValue(code, out text) ? text : "unknown error code";
        }

        /// <summary>One line for the user: the code, what the peer said, and what to do.</summary>
        public static string Describe(int code, string message)
        {
            string said = string.IsNullOrEmpty(message) ? "" : ": " + message;
            return "error " + code + said + " (" + Explain(code) + ")";
        }
    }

    /// <summary>End reasons of EPISODE_END (dataset.episode.EndReason): below 16 terminated, else truncated.</summary>
    public static class EndReasonText
    {
        static readonly Dictionary<int, string> Names = new Dictionary<int, string>
        {
            { 1, "life lost" }, { 2, "game over" }, { 3, "level end" },
            { 16, "step limit" }, { 17, "disconnect" }, { 18, "recorder interrupted" },
            { 19, "client stop" }, { 20, "screen changed" }, { 21, "server stop" },
            { 22, "budget spent" }, { 23, "agent reset" },
        };

        public static string Name(int code)
        {
            string text;
            return Names.TryGetValue(code, out text) ? text : "reason " + code;
        }
    }

    /// <summary>The peer (or this side) broke the protocol; Code goes into ERROR and the close frame.</summary>
    public class ProtocolException : Exception
    {
        public ErrorCode Code { get; private set; }

        public ProtocolException(ErrorCode code, string message) : base(message)
        {
            Code = code;
        }
    }

    // --- messages ----------------------------------------------------------------------

    public abstract class Message
    {
        public abstract Kind Kind { get; }
    }

    public sealed class Hello : Message
    {
        public override Kind Kind { get { return Kind.Hello; } }
        public ushort ProtocolVersion = Limits.ProtocolVersion;
        public string ClientName = "";
        public string ClientVersion = "";
        public string Emulator = "";
        public string Core = "";
        public string System = "";
        public string RomName = "";
        public string RomHash = "";
        public string Game = "";
        public Mode Mode = Mode.Any;
        public int ScreenWidth;
        public int ScreenHeight;
        public PixelFormat PixelFormat = PixelFormat.Bgra32;
        public int RamSize;
        public string[] Buttons = new string[0];
        public string Token = "";
        public Capability Capabilities = Capability.None;
    }

    public sealed class Welcome : Message
    {
        public override Kind Kind { get { return Kind.Welcome; } }
        public ushort ProtocolVersion = Limits.ProtocolVersion;
        public string ServerName = "";
        public string ServerVersion = "";
        public string SessionId = "";
        public string ProfileId = "";
        public Mode Mode;
        public int FrameSkip = 1;
        public SendFlag Send;
        public uint StepTimeoutMs;
        public uint MaxSteps;
    }

    /// <summary>Screen and RAM after a step; pixels already in the wire format of PixelFormat.</summary>
    public sealed class Observation
    {
        public int Width;
        public int Height;
        public PixelFormat Format = PixelFormat.None;
        public byte[] Pixels = new byte[0];
        public byte[] Ram = new byte[0];

        public static int BytesPerPixel(PixelFormat format)
        {
            if (format == PixelFormat.Rgb24) return 3;
            if (format == PixelFormat.Bgra32) return 4;
            return 0;
        }
    }

    public sealed class EpisodeBegin : Message
    {
        public override Kind Kind { get { return Kind.EpisodeBegin; } }
        public uint Episode;
        public ulong Frame;
        public ulong TimeUs;
        public byte[] StartState = new byte[0];
        public Observation Observation = new Observation();
    }

    public sealed class Step : Message
    {
        public override Kind Kind { get { return Kind.Step; } }
        public uint Seq;
        public ulong Frame;
        public ulong TimeUs;
        public uint[] Buttons = new uint[0];
        public Observation Observation = new Observation();
    }

    public sealed class FramesDropped : Message
    {
        public override Kind Kind { get { return Kind.FramesDropped; } }
        public uint FirstSeq;
        public uint Count;
        public ulong FirstFrame;
        public ulong LastFrame;
    }

    public sealed class ActionMsg : Message
    {
        public override Kind Kind { get { return Kind.Action; } }
        public uint Seq;
        public uint Buttons;
        public short Action = -1;
        public uint PolicyVersion;
    }

    public sealed class Reset : Message
    {
        public override Kind Kind { get { return Kind.Reset; } }
        public uint Episode;
        public bool LoadStartState = true;
    }

    public sealed class EpisodeEnd : Message
    {
        public override Kind Kind { get { return Kind.EpisodeEnd; } }
        public uint Episode;
        public uint Steps;
        public byte Reason;
        public bool Terminated;
        public bool Truncated;
        public double Return;
        public string FileName = "";
    }

    /// <summary>
    /// Display only: the open episode's progress and last reward, sent by the recorder after
    /// every 15th step (docs/protocol.md, STATUS). It never changes the session; a client may
    /// ignore it but must accept it at any time after WELCOME.
    /// </summary>
    public sealed class StatusMsg : Message
    {
        public override Kind Kind { get { return Kind.Status; } }
        public uint Episode;
        /// <summary>Steps of the episode so far, the latest included.</summary>
        public uint Steps;
        /// <summary>Reward of the latest step (computed by the recorder from RAM, with the game profile).</summary>
        public double LastReward;
        /// <summary>Sum of the episode's rewards so far.</summary>
        public double Return;
    }

    public sealed class Stop : Message
    {
        public override Kind Kind { get { return Kind.Stop; } }
        public StopReason Reason;
        public string Text = "";
    }

    public sealed class ErrorMsg : Message
    {
        public override Kind Kind { get { return Kind.Error; } }
        public ushort Code;
        public string Text = "";
    }
}
