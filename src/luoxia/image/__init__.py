"""Images: VAE, GAN and diffusion models, the shapes world and digits data, text-to-image pipelines.

    from luoxia.image.pipeline import ImageModel
    model = ImageModel.load("shapes")                       # the embedded diffusion model
    images = model.generate("a small red circle at the top left", n=4, steps=50, guidance=3, seed=0)
    images.grid_artifact().save("out.png")                  # labelled PNG
"""
