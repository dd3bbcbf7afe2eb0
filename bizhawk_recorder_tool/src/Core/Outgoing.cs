// One message the session rules (ClientSession) want sent; RecorderSession hands it to the transport.
namespace SonicRL.Tool
{
    public sealed class Outgoing
    {
        public Outgoing(Message message, byte[] data, bool droppable)
        {
            Message = message;
            Data = data;
            Droppable = droppable;
        }

        /// <summary>The message, decoded (for logs and RecorderSession.Sent).</summary>
        public Message Message { get; }

        /// <summary>Its bytes; null when a STEP was skipped because the send queue was full (never built).</summary>
        public byte[] Data { get; }

        /// <summary>A human-mode STEP: a full send queue may refuse it (it is then reported as dropped).</summary>
        public bool Droppable { get; }

        public bool Skipped => Data == null;
    }
}
