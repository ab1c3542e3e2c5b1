// Plays the chosen moment from its start and pauses at its end. The seek itself comes from the Python side
// (gr.Video(playback_position=...)); setting currentTime again here covers clicking the same row twice.
// Gradio runs this as an event's `js`: one arrow function taking the event's input, [start, end] seconds.
(segment) => {
  const video = document.querySelector('#player video');
  if (!video || !segment || segment.length < 2) return;
  const [start, end] = segment;
  if (video._univtgStop) video.removeEventListener('timeupdate', video._univtgStop);
  const stop = () => {
    if (video.currentTime >= end - 0.05) {
      video.pause();
      video.removeEventListener('timeupdate', stop);
      video._univtgStop = null;
    }
  };
  video._univtgStop = stop;
  const go = () => {
    if (Math.abs(video.currentTime - start) > 0.2) video.currentTime = start;
    video.addEventListener('timeupdate', stop);
    const playing = video.play();
    if (playing && playing.catch) playing.catch(() => {});
  };
  if (video.readyState >= 1) go(); else video.addEventListener('loadedmetadata', go, { once: true });
}
